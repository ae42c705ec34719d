package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/callroom/callroom/internal/fhirtest"
)

// callroom fhir subscribe registers the configured subscriptions on a real
// FHIR server, as an operator runs it.
func TestFHIRSubscribe(t *testing.T) {
	t.Parallel()
	ehr := fhirtest.Start(t)
	path := filepath.Join(t.TempDir(), "fhir.json")
	conf := `{"base_url": "` + ehr.URL + `", "subscriptions": [
		{"name": "admissions", "flavor": "rest-hook-payload", "criteria": "Encounter?status=in-progress", "secret": "0123456789abcdef0123"}]}`
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"fhir", "subscribe", "--config", path, "--public-url", "https://callroom.example.org"}, nil, &out, &errb)
	if err != nil || !strings.HasPrefix(out.String(), "admissions\tSubscription/") {
		t.Fatalf("subscribe: %v %q %q", err, out.String(), errb.String())
	}
	_, b := ehr.Do("GET", "Subscription", nil)
	sub := b["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
	if sub["channel"].(map[string]any)["endpoint"] != "https://callroom.example.org/fhir/hooks/admissions" {
		t.Fatalf("subscription = %v", sub)
	}
	if err := run(context.Background(), []string{"fhir", "subscribe", "--public-url", "https://x"}, nil, &out, &errb); err == nil ||
		!strings.Contains(err.Error(), "CALLROOM_FHIR_CONFIG") {
		t.Fatalf("without a configuration: %v", err)
	}
}
