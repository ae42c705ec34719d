package auth

import (
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/callroom/callroom"
)

// User is a person who signs in to callroom: a nurse, a physician, a
// scheduler, an administrator or an auditor. Users are never deleted, only
// deactivated, so the audit trail and page timelines keep naming them.
type User struct {
	ID        uuid.UUID `json:"id" db:"id"`
	Email     string    `json:"email" db:"email"`
	Name      string    `json:"name" db:"name"`
	Roles     []Role    `json:"roles" db:"roles"`
	NPI       *string   `json:"npi,omitempty" db:"npi"`
	TimeZone  string    `json:"time_zone" db:"time_zone"`
	Active    bool      `json:"active" db:"active"`
	CreatedAt time.Time `json:"created_at" db:"created_at"`
	UpdatedAt time.Time `json:"updated_at" db:"updated_at"`
}

// Has reports whether u holds role r.
func (u User) Has(r Role) bool {
	for _, x := range u.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// NewUser is what creating a user takes.
type NewUser struct {
	Email    string   `json:"email"`
	Name     string   `json:"name"`
	Roles    []string `json:"roles"`
	NPI      *string  `json:"npi,omitempty"`
	TimeZone string   `json:"time_zone,omitempty"`
	Password *string  `json:"password,omitempty"`
}

// UserChange is a partial update; nil fields stay as they are.
type UserChange struct {
	Name     *string   `json:"name,omitempty"`
	Roles    *[]string `json:"roles,omitempty"`
	NPI      *string   `json:"npi,omitempty"` // "" clears it
	TimeZone *string   `json:"time_zone,omitempty"`
	Active   *bool     `json:"active,omitempty"`
	Password *string   `json:"password,omitempty"`
}

func normalizeEmail(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", callroom.Invalid(field, "is required")
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || len(s) > 254 {
		return "", callroom.Invalid(field, "is not an email address")
	}
	return strings.ToLower(s), nil
}

func checkName(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", callroom.Invalid(field, "is required")
	}
	if utf8.RuneCountInString(s) > 200 {
		return "", callroom.Invalid(field, "is longer than 200 characters")
	}
	return s, nil
}

// CheckTimeZone returns an error naming field unless tz is an IANA time zone.
func CheckTimeZone(field, tz string) error {
	if tz == "" || tz == "Local" {
		return callroom.Invalid(field, "is required (an IANA time zone such as America/Chicago)")
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return callroom.Invalid(field, "unknown time zone %q", tz)
	}
	return nil
}

// CheckNPI validates a US National Provider Identifier: ten digits whose last
// is a Luhn check digit over the prefix 80840 and the first nine.
func CheckNPI(field, npi string) error {
	if len(npi) != 10 {
		return callroom.Invalid(field, "must be 10 digits")
	}
	sum := 24 // the Luhn contribution of the prefix 80840
	for i := 8; i >= 0; i-- {
		c := npi[i]
		if c < '0' || c > '9' {
			return callroom.Invalid(field, "must be 10 digits")
		}
		d := int(c - '0')
		if (8-i)%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	if npi[9] < '0' || npi[9] > '9' || int(npi[9]-'0') != (10-sum%10)%10 {
		return callroom.Invalid(field, "check digit does not match")
	}
	return nil
}

func checkPassword(field, pw string) error {
	n := utf8.RuneCountInString(pw)
	if n < MinPasswordLength {
		return callroom.Invalid(field, "must be at least %d characters", MinPasswordLength)
	}
	if len(pw) > MaxPasswordLength {
		return callroom.Invalid(field, "must be at most %d bytes", MaxPasswordLength)
	}
	return nil
}
