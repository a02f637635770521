package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
)

// The production configuration of the README, read as serve reads it: a
// YAML file, an environment variable over it, a flag over both.
func TestServeConfigFileEnvAndFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "roamtrail.yaml")
	yaml := "smsc: smsc1.example.net:2775\nsystem-id: roamtrail\nwindow: 20\nmax-tps: 500\nworkers: 32\nbind: rx+tx\nlong: sar\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ROAMTRAIL_WORKERS", "48")
	var got gatewayConfig
	app := &cli.App{Name: "serve", Action: func(c *cli.Context) (err error) {
		got, err = gatewayConfigFrom(c)
		return err
	}}
	// The Before hook sets the very flags the app parses.
	flags := gatewayFlags()
	app.Flags, app.Before = flags, altsrc.InitInputSourceWithContext(flags, configFile)
	if err := app.Run([]string{"serve", "--config", file, "--window", "30"}); err != nil {
		t.Fatalf("serve with the README's configuration: %v", err)
	}
	if got.smpp.Addr != "smsc1.example.net:2775" || got.smpp.MaxTPS != 500 {
		t.Errorf("from the file: smsc %q, max-tps %v", got.smpp.Addr, got.smpp.MaxTPS)
	}
	if got.smpp.Window != 30 {
		t.Errorf("window = %d, want the flag's 30 over the file's 20", got.smpp.Window)
	}
	if got.gw.Workers != 48 {
		t.Errorf("workers = %d, want ROAMTRAIL_WORKERS's 48 over the file's 32", got.gw.Workers)
	}

	// A value of the wrong kind is an error naming the key, not a panic.
	if err := os.WriteFile(file, []byte("window: lots\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	flags = gatewayFlags()
	app.Flags, app.Before = flags, altsrc.InitInputSourceWithContext(flags, configFile)
	if err := app.Run([]string{"serve", "--config", file, "--smsc", "127.0.0.1:2775"}); err == nil {
		t.Error("window: lots was accepted")
	}
}
