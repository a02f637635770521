package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildRoamtrail builds the binary into a temp dir: the tests that kill a
// process with SIGKILL need it to be a process of its own.
func buildRoamtrail(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "roamtrail")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = os.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// auditVerify runs `roamtrail audit verify` on a data dir no service
// holds, as an auditor it adds (and the first admin, if there is none).
func auditVerify(t *testing.T, dataDir string) {
	t.Helper()
	if _, _, err := runCmd(t, "", "operators", "add", "--data-dir", dataDir, "--role", "admin", "--bootstrap", "root"); err != nil && !strings.Contains(err.Error(), "admin") {
		t.Fatalf("operators add root: %v", err)
	}
	if _, _, err := runCmd(t, "", "operators", "add", "--data-dir", dataDir, "--operator", "root", "--role", "auditor", "aud"); err != nil && !strings.Contains(err.Error(), "exists") {
		t.Fatalf("operators add aud: %v", err)
	}
	out, stderr, err := runCmd(t, "", "audit", "verify", "--data-dir", dataDir, "--operator", "aud")
	if err != nil || !strings.Contains(out, "access log verified") {
		t.Fatalf("audit verify: %v\n%s%s", err, out, stderr)
	}
}
