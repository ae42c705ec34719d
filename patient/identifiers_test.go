package patient_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pgtest"
	"github.com/callroom/callroom/patient"
)

func TestCheckRef(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ref string
		ok  bool
	}{
		{"Patient/123", true},
		{"Patient/a-b.c", true},
		{"urn:oid:2.16.840.1.113883.3.1|12345", true},
		{"http://hospital.example/mrn|A 1", false},
		{"123", false},
		{"Patient/", false},
		{"Encounter/1", false},
		{"|123", false},
		{"sys|", false},
		{"sys|a|b", false},
		{"sys|50%", false},
		{"", false},
	} {
		err := patient.CheckRef("ref", tc.ref)
		var fe *callroom.FieldError
		if tc.ok != (err == nil) || (err != nil && (!errors.As(err, &fe) || fe.Field != "ref")) {
			t.Errorf("CheckRef(%q) = %v, want ok=%v", tc.ref, err, tc.ok)
		}
	}
}

// TestLink: linking is idempotent, an identifier moves when the EHR says so,
// Names answers from either name, and only changes are audited.
func TestLink(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t).Pool
	link := func(ref string, ids ...string) int {
		t.Helper()
		n, err := patient.Link(ctx, db, audit.System, ref, ids, patient.FromEHR)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	names := func(ref string) []string {
		t.Helper()
		got, err := patient.Names(ctx, db, ref)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := names("sys|A"); !slices.Equal(got, []string{"sys|A"}) {
		t.Errorf("an unknown identifier's names: %v", got)
	}
	if n := link("Patient/1", "sys|B", "sys|A", "sys|A"); n != 2 {
		t.Errorf("first link changed %d, want 2", n)
	}
	if n := link("Patient/1", "sys|A"); n != 0 {
		t.Errorf("the same link again changed %d, want 0", n)
	}
	want := []string{"Patient/1", "sys|A", "sys|B"}
	for _, ref := range want {
		if got := names(ref); !slices.Equal(got, want) {
			t.Errorf("names(%s) = %v, want %v", ref, got, want)
		}
	}
	if n := link("Patient/2", "sys|B", "sys|C"); n != 2 {
		t.Errorf("moving one and adding one changed %d, want 2", n)
	}
	if got := names("sys|A"); !slices.Equal(got, []string{"Patient/1", "sys|A"}) {
		t.Errorf("after the move: %v", got)
	}
	if got := names("Patient/2"); !slices.Equal(got, []string{"Patient/2", "sys|B", "sys|C"}) {
		t.Errorf("the new owner: %v", got)
	}
	evs, err := audit.List(ctx, db, audit.Filter{Action: "patient.link"})
	if err != nil || len(evs) != 2 {
		t.Fatalf("%d link events (%v), want 2", len(evs), err)
	}
	if d := evs[1].Details; d["linked"] != float64(2) || d["moved"] != float64(1) {
		t.Errorf("the move's event details: %v", d)
	}
	if _, err := patient.Link(ctx, db, audit.System, "sys|A", []string{"sys|D"}, patient.FromEHR); err == nil {
		t.Error("an identifier linked to an identifier")
	}
}
