package oncall

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestValidateOverrideContradictions(t *testing.T) {
	base := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	h := func(n int) time.Time { return base.Add(time.Duration(n) * time.Hour) }
	add := func(u uuid.UUID, from, to int) Override {
		return Override{ID: uuid.New(), Kind: OverrideAdd, AddUserID: refOf(u), Start: h(from), End: h(to)}
	}
	remove := func(u uuid.UUID, from, to int) Override {
		return Override{ID: uuid.New(), Kind: OverrideRemove, RemoveUserID: refOf(u), Start: h(from), End: h(to)}
	}
	replace := func(out, in uuid.UUID, from, to int) Override {
		return Override{ID: uuid.New(), Kind: OverrideReplace, RemoveUserID: refOf(out), AddUserID: refOf(in), Start: h(from), End: h(to)}
	}
	edited := replace(u1, u2, 0, 10)
	cases := []struct {
		name     string
		existing []Override
		o        Override
		field    string
	}{
		{"no existing", nil, add(u1, 0, 1), ""},
		{"two removes of the same user", []Override{remove(u1, 0, 10)}, remove(u1, 5, 15), "start"},
		{"two replaces of the same user", []Override{replace(u1, u2, 0, 10)}, replace(u1, u3, 9, 12), "start"},
		{"remove and replace of the same user", []Override{remove(u1, 0, 10)}, replace(u1, u3, 2, 3), "start"},
		{"add and remove of the same user", []Override{add(u1, 0, 10)}, remove(u1, 5, 6), "start"},
		{"remove then add of the same user", []Override{remove(u1, 0, 10)}, add(u1, 0, 10), "start"},
		{"two adds of the same user", []Override{add(u1, 0, 10)}, add(u1, 3, 4), "start"},
		{"add and replace bringing the same user", []Override{add(u3, 0, 10)}, replace(u1, u3, 3, 4), "start"},
		{"two replaces bringing the same cover", []Override{replace(u1, u3, 0, 10)}, replace(u2, u3, 3, 4), "start"},
		{"chained replaces", []Override{replace(u1, u2, 0, 10)}, replace(u2, u3, 3, 4), "start"},
		{"new override contains the old one", []Override{remove(u1, 3, 4)}, remove(u1, 0, 10), "start"},
		{"conflict found among many", []Override{add(u2, 0, 10), add(u3, 0, 10), remove(u4, 20, 30)}, remove(u4, 25, 26), "start"},

		{"adjacent, not overlapping", []Override{remove(u1, 0, 10)}, remove(u1, 10, 20), ""},
		{"adjacent before", []Override{remove(u1, 10, 20)}, remove(u1, 0, 10), ""},
		{"overlapping, different users", []Override{remove(u1, 0, 10)}, replace(u2, u3, 0, 10), ""},
		{"two adds of different users", []Override{add(u1, 0, 10)}, add(u2, 0, 10), ""},
		{"editing an override ignores its old version", []Override{edited}, func() Override { o := edited; o.End = h(12); return o }(), ""},

		{"invalid override is reported first", []Override{remove(u1, 0, 10)}, remove(u1, 5, 5), "end"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assertField(t, ValidateOverride(tc.existing, tc.o), tc.field)
		})
	}
}
