package fhir_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/callroom/callroom/fhir"
	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/internal/fhirtest"
)

// communications returns the Communications the EHR holds with callroom's
// identifier value.
func communications(t *testing.T, ehr *fhirtest.Engine, value string) []map[string]any {
	t.Helper()
	status, b := ehr.Do("GET", "Communication?identifier="+url.QueryEscape(fhir.IdentifierSystem+"|"+value), nil, "X-Test-Bypass", "1")
	if status != 200 {
		t.Fatalf("searching Communications: %d %v", status, b)
	}
	var out []map[string]any
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		out = append(out, e.(map[string]any)["resource"].(map[string]any))
	}
	return out
}

func writebackID(t *testing.T, in *apitest.Instance, kind string, object uuid.UUID, event string) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	eventually(t, "the "+kind+" write-back queued", func() bool {
		return in.DB.Pool.QueryRow(context.Background(), `SELECT id FROM fhir_writebacks WHERE kind = $1 AND object_id = $2 AND event = $3`,
			kind, object, event).Scan(&id) == nil
	})
	return id
}

func sentAt(in *apitest.Instance, id uuid.UUID) (sent bool, lastError string) {
	var s *time.Time
	var e *string
	in.DB.Pool.QueryRow(context.Background(), `SELECT sent_at, last_error FROM fhir_writebacks WHERE id = $1`, id).Scan(&s, &e) //nolint:errcheck
	if e != nil {
		lastError = *e
	}
	return s != nil, lastError
}

// An acknowledged page goes back as one valid Communication (the engine
// validates every write), also when the EHR is down and then loses the
// answer to the create: the retry finds the one created (If-None-Exist).
// Paging does not wait for the EHR.
func TestPageWriteBackSurvivesEHROutage(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.in.Server.FHIR.RetryBase = 100 * time.Millisecond
	drA, _ := e.clinician("Dr A", "physician", true)
	nurse := e.in.User("Nurse N", "nurse")
	pat := e.patient()

	e.ehr.Control("down", map[string]any{"down": true})
	page := nurse.Must(201, "POST", "/api/v1/pages", map[string]any{"user_id": drA.User.ID, "priority": "urgent",
		"summary": "K 6.9 on the morning labs", "patient_ref": pat})
	pageID := uuid.MustParse(page["id"].(string))
	// Acknowledging does not depend on the EHR (which is down).
	drA.Must(200, "POST", "/api/v1/pages/"+pageID.String()+"/acknowledge", nil)
	wb := writebackID(t, e.in, "page", pageID, "acknowledged")
	eventually(t, "a failed attempt", func() bool { _, le := sentAt(e.in, wb); return le != "" })

	// The EHR creates the Communication but the answer is lost.
	e.ehr.Control("down", map[string]any{"down": true, "after": true})
	eventually(t, "the Communication created", func() bool { return len(communications(t, e.ehr, wb.String())) == 1 })
	time.Sleep(300 * time.Millisecond) // more retries while answers are lost
	e.ehr.Control("down", map[string]any{"down": false})
	eventually(t, "the write-back sent", func() bool { s, _ := sentAt(e.in, wb); return s })

	got := communications(t, e.ehr, wb.String())
	if len(got) != 1 {
		t.Fatalf("%d Communications, want exactly 1", len(got))
	}
	c := got[0]
	text := c["payload"].([]any)[0].(map[string]any)
	if c["status"] != "completed" || c["priority"] != "urgent" || c["subject"].(map[string]any)["reference"] != pat {
		t.Errorf("Communication = %v", c)
	}
	if _, both := text["contentAttachment"]; both || !strings.Contains(text["contentString"].(string), "Acknowledged by Dr A") ||
		!strings.Contains(text["contentString"].(string), "K 6.9") {
		t.Errorf("payload = %v", text)
	}
	rec := c["recipient"].([]any)[0].(map[string]any)
	if rec["identifier"].(map[string]any)["system"] != fhir.NPISystem || rec["display"] != "Dr A" {
		t.Errorf("recipient = %v", rec)
	}
	if strings.Contains(e.in.LogText(), "K 6.9") {
		t.Error("the page's text was logged")
	}
}

// A finished Encounter archives its thread and writes the conversation back.
func TestArchivedThreadWrittenBack(t *testing.T) {
	t.Parallel()
	e := start(t, fhir.Subscription{Name: "enc", Flavor: fhir.Medplum, Criteria: "Encounter", Secret: secret})
	drA, prA := e.clinician("Dr A", "physician", true)
	pat := e.patient()
	enc := e.ehr.Create(encounter(pat, "in-progress", "EMER", prA))
	encRef := "Encounter/" + enc["id"].(string)
	var thread uuid.UUID
	eventually(t, "the thread", func() bool { thread, _, _ = e.threadOf(pat, encRef); return thread != uuid.Nil })
	drA.Must(201, "POST", "/api/v1/threads/"+thread.String()+"/messages", map[string]any{"text": "Lactate rising, starting fluids"})
	enc["status"] = "finished"
	e.ehr.Update(enc)
	wb := writebackID(t, e.in, "thread", thread, "archived")
	eventually(t, "the write-back sent", func() bool { s, _ := sentAt(e.in, wb); return s })
	got := communications(t, e.ehr, wb.String())
	if len(got) != 1 {
		t.Fatalf("%d Communications, want 1", len(got))
	}
	c := got[0]
	text := c["payload"].([]any)[0].(map[string]any)["contentString"].(string)
	if !strings.Contains(text, "Lactate rising") || !strings.Contains(text, "Messages: 1") || !strings.Contains(text, "Dr A") {
		t.Errorf("payload = %q", text)
	}
	if c["encounter"].(map[string]any)["reference"] != encRef {
		t.Errorf("encounter = %v", c["encounter"])
	}
}

// Why callroom builds what it sends: golang-fhir-models v0.3.2 writes every
// choice of payload.content[x] (empty ones included) and a missing status as
// "preparation"; the engine's validator refuses the result.
func TestLibraryMarshalIsNotValidFHIR(t *testing.T) {
	t.Parallel()
	ehr := fhirtest.Start(t)
	lib, err := json.Marshal(models.Communication{Payload: []models.CommunicationPayload{{ContentString: "hello"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(lib), `"contentAttachment":{}`) || !strings.Contains(string(lib), `"status":"preparation"`) {
		t.Fatalf("the library's output changed (it is pinned at v0.3.2): %s", lib)
	}
	if status, out := ehr.Do("POST", "Communication", lib); status != 400 {
		t.Fatalf("the engine accepted the library's Communication: %d %v", status, out)
	}
}

// The daily digest: a patient thread with messages that day goes back once,
// however many times digests are queued.
func TestDailyDigest(t *testing.T) {
	t.Parallel()
	e := start(t)
	drA := e.in.User("Dr A", "physician")
	pat := e.patient()
	th := drA.Must(201, "POST", "/api/v1/threads", map[string]any{"kind": "patient", "patient_ref": pat})
	thread := uuid.MustParse(th["id"].(string))
	drA.Must(201, "POST", "/api/v1/threads/"+thread.String()+"/messages", map[string]any{"text": "Family meeting at 3"})
	today := time.Now().UTC()
	for i, want := range []int{1, 0} {
		n, err := e.in.Server.FHIR.QueueDigests(context.Background(), today)
		if err != nil || n != want {
			t.Fatalf("run %d: queued %d, %v; want %d", i, n, err, want)
		}
	}
	wb := writebackID(t, e.in, "digest", thread, today.Format(time.DateOnly))
	eventually(t, "the digest sent", func() bool { s, _ := sentAt(e.in, wb); return s })
	got := communications(t, e.ehr, wb.String())
	if len(got) != 1 {
		t.Fatalf("%d Communications, want 1", len(got))
	}
	text := got[0]["payload"].([]any)[0].(map[string]any)["contentString"].(string)
	if !strings.Contains(text, "Daily digest") || !strings.Contains(text, "Family meeting at 3") {
		t.Errorf("payload = %q", text)
	}
}
