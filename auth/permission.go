package auth

// Permission is something a caller may be allowed to do. Handlers ask for a
// permission, not a role, so the mapping below is the one place that says
// which role may do what (and the least-privilege matrix test reads it).
type Permission string

const (
	// ReadDirectory: see other users' names and roles (to page a person). Everyone.
	ReadDirectory Permission = "directory.read"
	// ManageUsers: create users, change roles, deactivate.
	ManageUsers Permission = "users.manage"
	// ReadSchedules: see schedules and who is on call. Everyone.
	ReadSchedules Permission = "schedules.read"
	// EditSchedules: create and change schedules, rotations, rules, overrides.
	EditSchedules Permission = "schedules.edit"
	// ReadAudit: read the audit trail.
	ReadAudit Permission = "audit.read"
	// SendPages: page a service or a person.
	SendPages Permission = "pages.send"
	// ReadPages: see pages and their timelines.
	ReadPages Permission = "pages.read"
	// ManageServices: create services and escalation policies.
	ManageServices Permission = "services.manage"
)

var grants = map[Role][]Permission{
	Nurse:     {ReadDirectory, ReadSchedules, SendPages, ReadPages},
	Physician: {ReadDirectory, ReadSchedules, SendPages, ReadPages},
	Scheduler: {ReadDirectory, ReadSchedules, EditSchedules, ReadPages},
	Admin:     {ReadDirectory, ManageUsers, ReadSchedules, EditSchedules, ReadAudit, SendPages, ReadPages, ManageServices},
	Auditor:   {ReadDirectory, ReadSchedules, ReadAudit, ReadPages},
}

// Grants reports whether any of roles grants p.
func Grants(roles []Role, p Permission) bool {
	for _, r := range roles {
		for _, g := range grants[r] {
			if g == p {
				return true
			}
		}
	}
	return false
}

// AllPermissions lists every permission, for clients that adapt their
// screens to what the user may do.
func AllPermissions() []Permission {
	return []Permission{ReadDirectory, ManageUsers, ReadSchedules, EditSchedules, ReadAudit, SendPages, ReadPages, ManageServices}
}
