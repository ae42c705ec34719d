// Package notify delivers page notifications to clinicians over outbound
// channels: email through an SMTP relay and JSON webhooks to SMS and pager
// gateways.
//
// Three rules shape everything here:
//
//   - No PHI leaves through a channel. A Notice has no field that could hold a
//     patient name, identifier or the page text, so no sender can put one in
//     an email or a webhook body. The clinician follows the link and signs in
//     to read the page.
//   - One attempt per call. Senders do not retry or sleep; the caller (a River
//     job) owns scheduling. Instead every failure is a *DeliveryError that
//     says whether trying again could help and, when the remote side asked for
//     it, how long to wait.
//   - Every network step is bounded by the caller's context and the sender's
//     own timeout, so a hung relay or gateway cannot hold a worker.
//
// It also keeps each person's contact methods and notification rules (Store)
// and turns them into the notifications one escalation step sends (Plan).
// net/http is used only as a client, for webhooks.
package notify
