package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/escalation"
	"github.com/callroom/callroom/inbox"
	"github.com/callroom/callroom/notify"
	"github.com/callroom/callroom/oncall"
)

// FuzzDecode feeds arbitrary bodies to the strict JSON decoder for every
// request type the API reads. It must never panic, and it must either accept
// the body (writing nothing) or answer a 4xx problem+json that is itself
// valid JSON. Run longer by hand:
//
//	go test ./httpapi -run '^$' -fuzz FuzzDecode -fuzztime 5m
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"email":"a@example.org","password":"x"}`, `{"service_id":"00000000-0000-0000-0000-000000000001","priority":"stat","summary":"s"}`,
		`{"kind":"email","address":"a@b"}`, `{"name":"ICU","time_zone":"America/Chicago"}`, `{"text":"hi","patient_ref":"Patient/1"}`,
		`{"mfa_required_roles":["physician"],"lockout_threshold":5}`, `{"code":"123456"}`, `[]`, `null`, `{"a":1}{}`,
		`{"email":1}`, `{"roles":"nurse"}`, "\xff\xfe", `{"summary":"` + string(bytes.Repeat([]byte("a"), 100)) + `"}`,
	} {
		for kind := range 8 {
			f.Add(uint8(kind), []byte(seed))
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		targets := []func() any{
			func() any { return &loginRequest{} }, func() any { return &escalation.NewPage{} },
			func() any { return &auth.NewUser{} }, func() any { return &auth.UserChange{} },
			func() any { return &notify.NewContactMethod{} }, func() any { return &oncall.NewSchedule{} },
			func() any { return &oncall.Override{} }, func() any { return &inbox.NewMessage{} },
			func() any { return &inbox.NewThread{} }, func() any { return &auth.SecuritySettingsChange{} },
			func() any { return &escalation.NewPolicy{} }, func() any { return &oncall.Rotation{} },
			func() any { return &totpCode{} },
		}
		v := targets[int(kind)%len(targets)]()
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/api/v1/x", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		ok := decode(w, r, v)
		if ok {
			if w.Body.Len() != 0 {
				t.Fatalf("accepted and answered: %s", w.Body)
			}
			if _, err := json.Marshal(v); err != nil {
				t.Fatalf("accepted a value that does not marshal: %v", err)
			}
			return
		}
		if w.Code < 400 || w.Code > 499 || w.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("refusal %d %q", w.Code, w.Header().Get("Content-Type"))
		}
		var p Problem
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Status != w.Code {
			t.Fatalf("problem body %q: %v", w.Body, err)
		}
	})
}

// FuzzLastEventID: the Last-Event-ID header (and its query twin) is outside
// input on every reconnect.
func FuzzLastEventID(f *testing.F) {
	for _, s := range []string{"", "0", "42", "-1", "9223372036854775808", "1e3", " 7 ", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/events", nil)
		r.Header.Set("Last-Event-ID", v)
		seq, given, err := lastEventID(r)
		if err == nil && given && seq < 0 {
			t.Fatalf("%q gave a negative sequence %d", v, seq)
		}
	})
}
