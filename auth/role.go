// Package auth owns the people who use callroom and how they prove who they
// are: users and their roles, passwords, API tokens and browser sessions, and
// the permissions each role grants.
package auth

import (
	"slices"

	"github.com/callroom/callroom"
)

// Role is a job a user does in callroom. A user may hold several.
type Role string

const (
	Nurse     Role = "nurse"
	Physician Role = "physician"
	Scheduler Role = "scheduler"
	Admin     Role = "admin"
	Auditor   Role = "auditor"
)

// Roles lists every role in a stable order.
var Roles = []Role{Nurse, Physician, Scheduler, Admin, Auditor}

// ParseRoles checks names and returns them deduplicated in the order of Roles.
func ParseRoles(field string, names []string) ([]Role, error) {
	seen := map[Role]bool{}
	for _, n := range names {
		r := Role(n)
		if !slices.Contains(Roles, r) {
			return nil, callroom.Invalid(field, "unknown role %q; want one of nurse, physician, scheduler, admin, auditor", n)
		}
		seen[r] = true
	}
	out := []Role{}
	for _, r := range Roles {
		if seen[r] {
			out = append(out, r)
		}
	}
	return out, nil
}
