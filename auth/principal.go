package auth

import (
	"github.com/google/uuid"

	"github.com/callroom/callroom/audit"
)

// Principal is the authenticated caller of one request.
type Principal struct {
	User       User
	TokenID    uuid.UUID // set when authenticated by API token
	SessionID  uuid.UUID // set when authenticated by browser session
	ClientAddr string
	// MFAEnrollmentRequired is set on a session whose user must have a second
	// factor (security settings) but has not enrolled one: it may reach only
	// /me and the enrolment endpoints.
	MFAEnrollmentRequired bool
}

// Can reports whether the caller holds a role that grants p.
func (p Principal) Can(perm Permission) bool { return Grants(p.User.Roles, perm) }

// Actor is the caller as the audit trail records it.
func (p Principal) Actor() audit.Actor {
	return audit.Actor{UserID: p.User.ID, ClientAddr: p.ClientAddr}
}
