package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/smsgw/smsc"
)

// selfSigned makes a CA-less certificate for 127.0.0.1 and writes it as
// PEM to a file: what an operator's private CA hands out, in small.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smsc.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, path
}

// serve --tls binds to an SMPP-over-TLS SMSC whose certificate chains to
// --tls-ca, answers over it, and refuses one it cannot verify.
func TestServeTLS(t *testing.T) {
	cert, ca := selfSigned(t)
	sim := startSim(t, smsc.Options{TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})

	t.Run("verified", func(t *testing.T) {
		startServe(t, serveConfig{smsc: sim.Addr(), args: []string{"--tls", "--tls-ca", ca}})
		waitBound(t, sim, 1)
		sim.inject(t, historyNumber, "TRIP")
		sim.waitTo(t, e164(historyNumber), 1)
		sim.inject(t, historyNumber, "Y")
		sim.waitTo(t, e164(historyNumber), 2)
		settle(sim)
		wantOnly(t, sim, e164(historyNumber), promptEN15, tripEN15)
	})
	t.Run("unverified", func(t *testing.T) {
		binds := sim.Stats().Binds
		srv := startServe(t, serveConfig{smsc: sim.Addr(), args: []string{"--tls"}})
		// Long enough for several dial attempts (and their backoff).
		time.Sleep(time.Second)
		if code, text := srv.health(t); code != http.StatusServiceUnavailable {
			t.Errorf("/healthz %d %q with an SMSC whose certificate no root vouches for", code, text)
		}
		if got := sim.Stats().Binds; got != binds {
			t.Errorf("bound %d times to an SMSC it could not verify", got-binds)
		}
	})
	t.Run("ca without tls", func(t *testing.T) {
		_, _, err := runCmd(t, "", "serve", "--smsc", sim.Addr(), "--tls-ca", ca, "--http", "127.0.0.1:0")
		if err == nil {
			t.Error("--tls-ca without --tls was accepted")
		}
	})
}
