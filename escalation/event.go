package escalation

// Event types this package publishes on users' streams (package events).
// Data is ids and codes only.
const (
	// EventPageNotify is an in-app notification of a page to its
	// recipient: {page_id, notification_id, priority}.
	EventPageNotify = "page.notify"
	// EventPageUpdated says a page changed, to its sender, the people it
	// reached and its patient thread's members: {page_id, status, priority}.
	EventPageUpdated = "page.updated"
)
