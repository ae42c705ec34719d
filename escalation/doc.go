// Package escalation is callroom's core promise: a page sent to a service
// reaches whoever is on call, and climbs the service's escalation policy
// until a human acknowledges it. Nothing is silently lost.
//
// State lives in PostgreSQL, never in memory: a page row says which step
// fired last and which River job will fire the next one. Every timed step is
// a River job inserted in the same transaction as the state it belongs to,
// so a crash between the two is impossible; acknowledging cancels the pending
// job in the acknowledging transaction, and the step worker re-checks the
// page under a row lock, so a step racing an acknowledgement never notifies
// anyone after the acknowledgement committed.
package escalation
