package auth

import (
	"testing"

	"github.com/callroom/callroom"
)

func TestCheckNPI(t *testing.T) {
	for _, tc := range []struct {
		npi string
		ok  bool
	}{
		{"1234567893", true}, // CMS's published example
		{"1245319599", true},
		{"1234567890", false},
		{"123456789", false},
		{"12345678a3", false},
	} {
		err := CheckNPI("npi", tc.npi)
		if (err == nil) != tc.ok {
			t.Errorf("CheckNPI(%q) = %v, want ok=%v", tc.npi, err, tc.ok)
		}
		if err != nil {
			if fe, ok := callroom.AsFieldError(err); !ok || fe.Field != "npi" {
				t.Errorf("CheckNPI(%q) error %v does not name the field", tc.npi, err)
			}
		}
	}
}

func TestPasswordHashRoundTrip(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := CheckPassword(h, "correct horse battery"); !ok || err != nil {
		t.Fatalf("right password refused: %v", err)
	}
	if ok, _ := CheckPassword(h, "correct horse batterz"); ok {
		t.Fatal("wrong password accepted")
	}
	h2, _ := HashPassword("correct horse battery")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: salt missing")
	}
}

func TestGrants(t *testing.T) {
	if Grants([]Role{Nurse}, EditSchedules) {
		t.Error("nurse may edit schedules")
	}
	if !Grants([]Role{Nurse, Scheduler}, EditSchedules) {
		t.Error("scheduler may not edit schedules")
	}
	if Grants(nil, ReadSchedules) {
		t.Error("no roles grants something")
	}
}
