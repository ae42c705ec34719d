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
)

// writeCert writes a self-signed certificate for 127.0.0.1 named cn.
func writeCert(t *testing.T, dir, cn string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600) //nolint:errcheck
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)   //nolint:errcheck
	return certFile, keyFile
}

// TestTLSConfig: callroom's own TLS refuses TLS 1.1, serves 1.2 and 1.3, and
// picks up a renewed certificate without a restart.
func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir, "first")
	tc, err := tlsConfig(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), ReadHeaderTimeout: time.Second}
	go srv.Serve(tls.NewListener(ln, tc)) //nolint:errcheck
	defer srv.Close()
	dial := func(min, max uint16) (*tls.ConnectionState, error) {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, MinVersion: min, MaxVersion: max}) //nolint:gosec // self-signed test certificate
		if err != nil {
			return nil, err
		}
		defer c.Close()
		st := c.ConnectionState()
		return &st, nil
	}
	if _, err := dial(tls.VersionTLS10, tls.VersionTLS11); err == nil {
		t.Error("a TLS 1.1 client was served")
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		st, err := dial(v, v)
		if err != nil || st.Version != v {
			t.Errorf("TLS %x: %v", v, err)
		}
	}
	if _, err := tlsConfig(filepath.Join(dir, "missing.pem"), keyFile); err == nil {
		t.Error("a missing certificate was accepted")
	}
	// Renewal: new files with a later modification time are served once
	// the 10-second check interval has passed.
	kp := &keyPair{certFile: certFile, keyFile: keyFile}
	served := func() string {
		c, err := kp.get()
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(c.Certificate[0])
		return leaf.Subject.CommonName
	}
	if cn := served(); cn != "first" {
		t.Fatalf("served %q", cn)
	}
	writeCert(t, dir, "second")
	later := time.Now().Add(time.Minute)
	os.Chtimes(certFile, later, later) //nolint:errcheck
	os.Chtimes(keyFile, later, later)  //nolint:errcheck
	if cn := served(); cn != "first" {
		t.Errorf("re-read within the check interval: %q", cn)
	}
	kp.checked = time.Time{}
	if cn := served(); cn != "second" {
		t.Errorf("served %q, want the renewed certificate", cn)
	}
}
