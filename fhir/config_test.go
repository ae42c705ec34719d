package fhir_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/callroom/callroom/fhir"
	"github.com/callroom/callroom/internal/fhirtest"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fhir.json")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// callroom fhir subscribe: every flavor's Subscription is valid FHIR (the
// engine validates it) and registering twice leaves one per endpoint.
func TestSubscribeFromConfigFile(t *testing.T) {
	t.Parallel()
	ehr := fhirtest.Start(t)
	path := writeConfig(t, `{"base_url": "`+ehr.URL+`", "timeout": "5s", "subscriptions": [
		{"name": "a", "flavor": "rest-hook-empty", "criteria": "CareTeam", "secret": "`+secret+`"},
		{"name": "b", "flavor": "rest-hook-payload", "criteria": "Encounter?status=in-progress", "secret": "`+secret+`"},
		{"name": "c", "flavor": "backport", "criteria": "Encounter", "topic": "http://example.org/t", "content": "full-resource", "heartbeat": "60s", "secret": "`+secret+`"},
		{"name": "d", "flavor": "medplum", "criteria": "Encounter", "secret": "`+secret+`"}]}`)
	cfg, _, err := fhir.LoadConfig(path, "http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		refs, err := fhir.Subscribe(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(refs) != 4 {
			t.Fatalf("refs = %v", refs)
		}
	}
	_, b := ehr.Do("GET", "Subscription?_count=100", nil)
	if n := len(b["entry"].([]any)); n != 4 {
		t.Fatalf("%d Subscriptions on the EHR after subscribing twice, want 4", n)
	}
}

func TestConfigFileMistakes(t *testing.T) {
	t.Parallel()
	cases := []struct{ text, want string }{
		{`{"subscriptions": []}`, "base URL is required"},
		{`{"base_url": "http://x", "timeout": "soon"}`, "timeout"},
		{`{"base_url": "http://x", "secrets": 1}`, "unknown field"},
		{`{"base_url": "http://x", "subscriptions": [{"name": "Bad Name", "flavor": "medplum", "criteria": "Encounter", "secret": "` + secret + `"}]}`, "name must be"},
		{`{"base_url": "http://x", "subscriptions": [{"name": "a", "flavor": "websocket", "criteria": "Encounter", "secret": "` + secret + `"}]}`, "flavor must be"},
		{`{"base_url": "http://x", "subscriptions": [{"name": "a", "flavor": "medplum", "criteria": "Patient", "secret": "` + secret + `"}]}`, "Encounter or CareTeam"},
		{`{"base_url": "http://x", "subscriptions": [{"name": "a", "flavor": "medplum", "criteria": "Encounter", "secret": "short"}]}`, "at least 16"},
		{`{"base_url": "http://x", "subscriptions": [{"name": "a", "flavor": "backport", "criteria": "Encounter", "secret": "` + secret + `"}]}`, "topic"},
		{`{"base_url": "http://x", "smart": {"client_id": "c"}}`, "private_key_file"},
		{`{"base_url": "http://x", "smart": {"client_id": "c", "private_key_file": "/nonexistent.pem"}}`, "smart key"},
		{`{"base_url": "http://x", "bearer_token": "t", "smart": {"client_id": "c", "private_key_file": "k"}}`, "not both"},
		{`{"base_url": "http://x", "writing_batches": 65}`, "writing_batches 65"},
		{`{"base_url": "http://x", "writing_batches": -1}`, "writing_batches -1"},
		{`{"base_url": "http://x", "writing_batches_idle": 65}`, "writing_batches_idle 65"},
		{`{"base_url": "http://x", "writing_batches_idle": 2}`, "at least writing_batches (4)"},
		{`{"base_url": "http://x", "writing_batches": 8, "writing_batches_idle": 6}`, "at least writing_batches (8)"},
	}
	for _, c := range cases {
		_, _, err := fhir.LoadConfig(writeConfig(t, c.text), "")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.text, err, c.want)
		}
	}
}

// writing_batches sets how many batches of notifications an instance
// applies at once while it sends pages, writing_batches_idle while not.
func TestConfigWritingBatches(t *testing.T) {
	t.Parallel()
	cfg, _, err := fhir.LoadConfig(writeConfig(t, `{"base_url": "http://x", "writing_batches": 16}`), "")
	if err != nil || cfg.WritingBatches != 16 || cfg.IdleWritingBatches != 0 {
		t.Fatalf("writing_batches 16: %+v, %v", cfg.WritingBatches, err)
	}
	cfg, _, err = fhir.LoadConfig(writeConfig(t, `{"base_url": "http://x", "writing_batches": 2, "writing_batches_idle": 2}`), "")
	if err != nil || cfg.WritingBatches != 2 || cfg.IdleWritingBatches != 2 {
		t.Fatalf("writing_batches 2, idle 2 (a fixed cap): %+v, %v", cfg, err)
	}
	cfg, _, err = fhir.LoadConfig(writeConfig(t, `{"base_url": "http://x"}`), "")
	if err != nil || cfg.WritingBatches != 0 {
		t.Fatalf("no writing_batches: %d (0 means fhir.DefaultWritingBatches, %d), %v", cfg.WritingBatches, fhir.DefaultWritingBatches, err)
	}
}
