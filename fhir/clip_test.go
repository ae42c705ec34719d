package fhir

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// clip keeps what fits in whole characters: a cut inside one would be
// refused by PostgreSQL (invalid UTF-8) and fail the batch that stores it.
func TestClip(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdef", 3, "abc"},
		{"Zimmer ↓", 8, "Zimmer "}, // ↓ is 3 bytes, starting at byte 7
		{strings.Repeat("é", 3), 5, "éé"},
	} {
		got := clip(tc.s, tc.n)
		if got != tc.want || !utf8.ValidString(got) || len(got) > tc.n {
			t.Errorf("clip(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}
