package fhir_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"math/big"
	"testing"

	"github.com/callroom/callroom/fhir"
	"github.com/callroom/callroom/internal/fhirtest"
)

func jwk(t *testing.T, k crypto.Signer) map[string]any {
	b64 := base64.RawURLEncoding.EncodeToString
	switch pk := k.Public().(type) {
	case *rsa.PublicKey:
		return map[string]any{"kty": "RSA", "n": b64(pk.N.Bytes()), "e": b64(big.NewInt(int64(pk.E)).Bytes())}
	case *ecdsa.PublicKey:
		x, y := make([]byte, 48), make([]byte, 48)
		pk.X.FillBytes(x)
		pk.Y.FillBytes(y)
		return map[string]any{"kty": "EC", "crv": "P-384", "x": b64(x), "y": b64(y)}
	}
	t.Fatal("key type")
	return nil
}

// SMART Backend Services against the engine's token endpoint: discovery,
// a private_key_jwt assertion signed RS384 or ES384, the token reused until
// it expires, and a refused (revoked) token replaced once.
func TestSMARTBackendServices(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]crypto.Signer{"RS384": rsaKey, "ES384": ecKey} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ehr := fhirtest.Start(t)
			pat := ehr.Create(map[string]any{"resourceType": "Patient", "active": true})
			ehr.Control("smart", map[string]any{"client_id": "callroom", "jwk": jwk(t, key)})
			ctx := context.Background()

			anonymous := fhir.NewClient(fhir.Config{BaseURL: ehr.URL})
			if _, err := anonymous.Read(ctx, "Patient", pat["id"].(string)); err == nil {
				t.Fatal("the engine answered without a token: this test would prove nothing")
			}
			c := fhir.NewClient(fhir.Config{BaseURL: ehr.URL, SMART: &fhir.SMART{ClientID: "callroom", Key: key, Scope: "system/*.read"}})
			for i := 0; i < 5; i++ {
				if _, err := c.Read(ctx, "Patient", pat["id"].(string)); err != nil {
					t.Fatal(err)
				}
			}
			if got := ehr.Control("smart", map[string]any{})["issued"]; got != float64(1) {
				t.Fatalf("%v tokens issued for 5 reads, want 1 (cached)", got)
			}
			ehr.Control("smart", map[string]any{"revoke": true})
			if _, err := c.Read(ctx, "Patient", pat["id"].(string)); err != nil {
				t.Fatalf("after revocation: %v", err)
			}
			if got := ehr.Control("smart", map[string]any{})["issued"]; got != float64(2) {
				t.Fatalf("%v tokens issued, want 2", got)
			}

			other, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
			bad := fhir.NewClient(fhir.Config{BaseURL: ehr.URL, SMART: &fhir.SMART{ClientID: "callroom", Key: other}})
			if _, err := bad.Read(ctx, "Patient", pat["id"].(string)); err == nil {
				t.Fatal("a key the EHR does not know got a token")
			}
		})
	}
}
