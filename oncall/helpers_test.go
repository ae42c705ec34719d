package oncall

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
	_ "time/tzdata" // tests must not depend on the machine's zoneinfo

	"github.com/google/uuid"
)

// Users with ids that sort in numeric order, so expected sets read naturally.
var (
	u1 = testUser(1)
	u2 = testUser(2)
	u3 = testUser(3)
	u4 = testUser(4)
	u5 = testUser(5)
)

func testUser(n int) uuid.UUID {
	return uuid.MustParse(fmt.Sprintf("00000000-0000-4000-8000-%012d", n))
}

func refOf[T any](v T) *T { return &v }

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustTimeOfDay(s string) TimeOfDay {
	t, err := ParseTimeOfDay(s)
	if err != nil {
		panic(err)
	}
	return t
}

// allTheTime is a window covering every instant.
var allTheTime = Window{}

func userRule(u uuid.UUID, ws ...Window) Rule {
	return Rule{ID: uuid.New(), UserID: refOf(u), Windows: ws}
}

func rotationRule(r uuid.UUID, ws ...Window) Rule {
	return Rule{ID: uuid.New(), RotationID: refOf(r), Windows: ws}
}

func window(start, end string, days ...time.Weekday) Window {
	return Window{Weekdays: days, Start: mustTimeOfDay(start), End: mustTimeOfDay(end)}
}

func mustCompile(t testing.TB, s Schedule) *Compiled {
	t.Helper()
	c, err := Compile(s)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return c
}

func userNames(ids []uuid.UUID) string {
	out := "["
	for i, id := range ids {
		if i > 0 {
			out += " "
		}
		switch id {
		case u1, u2, u3, u4, u5:
			out += fmt.Sprintf("u%d", id[15])
		default:
			out += id.String()
		}
	}
	return out + "]"
}

func assertSet(t *testing.T, got []uuid.UUID, want ...uuid.UUID) {
	t.Helper()
	if want == nil {
		want = []uuid.UUID{}
	}
	if !slices.Equal(got, want) {
		t.Errorf("on call = %s, want %s", userNames(got), userNames(want))
	}
}

func assertField(t *testing.T, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Errorf("err = %v, want nil", err)
		}
		return
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v (%T), want *FieldError on %q", err, err, field)
	}
	if fe.Field != field {
		t.Errorf("field = %q (%s), want %q", fe.Field, fe.Detail, field)
	}
}

func fmtShifts(ss []Shift, l *time.Location) string {
	out := ""
	for _, s := range ss {
		out += fmt.Sprintf("%s %s - %s\n", userNames([]uuid.UUID{s.UserID}),
			s.Start.In(l).Format("Mon 01-02 15:04 MST"), s.End.In(l).Format("Mon 01-02 15:04 MST"))
	}
	return out
}
