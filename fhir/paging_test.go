package fhir_test

import (
	"testing"
	"time"
)

// The server tells the EHR store of every page the instance sends
// (escalation.Store.Paging wired to fhir.Priority), so that the EHR's
// batches give way to paging.
func TestPagesHoldBackEHRWork(t *testing.T) {
	t.Parallel()
	e := start(t)
	doctor := e.in.User("Dr A", "physician")
	nurse := e.in.User("Nurse N", "nurse")
	if at := e.in.Server.FHIR.LastPageSent(); !at.IsZero() {
		t.Fatalf("a page heard of at %v before any was sent", at)
	}
	before := time.Now()
	nurse.Must(201, "POST", "/api/v1/pages", map[string]any{"user_id": doctor.User.ID, "priority": "urgent", "summary": "K 6.9"})
	if at := e.in.Server.FHIR.LastPageSent(); at.Before(before) {
		t.Fatalf("the EHR store did not hear of the page (last at %v)", at)
	}
}
