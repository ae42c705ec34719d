// Package reports answers the quality committee's questions from the page
// timelines, in SQL: how fast pages are acknowledged per service and
// priority, how fast each person responds, and where an escalation step
// found nobody on call. Reports name services and staff, never patients.
package reports
