// Package fhir connects callroom to the EHR over FHIR R4.
//
// Receiving: the EHR's subscriptions call back at /fhir/hooks/{subscription}
// in one of four flavors ([Flavor]): an R4 rest-hook without payload (an
// empty POST: callroom searches what changed with _lastUpdated), an R4
// rest-hook with payload (the resource PUT to [endpoint]/[type]/[id]), a
// topic-based notification of the Subscriptions R5 Backport IG (a history
// Bundle led by a SubscriptionStatus Parameters), or Medplum's (the bare
// resource POSTed with an X-Signature HMAC). [Receiver.Accept] checks the
// caller (a shared secret header or an HMAC-SHA256 of the body), checks the
// shape, and records the notification with a River job in one transaction:
// a burst is absorbed, a duplicate (same bytes again) is recorded once, and a
// crash loses nothing. [ProcessWorker] does the work.
//
// Acting: an Encounter that starts (in-progress, or arrived for an
// emergency visit) opens or updates its patient's thread with its
// participants as members; a finished or cancelled one archives it. A
// CareTeam keeps membership in step (participants whose period is current).
// Practitioners are matched to users by NPI, then by email; the others are
// listed for an administrator ([Store.Unmatched]), never guessed.
//
// Decoding: resources are read with golang-fhir-models v0.3.2, whose
// Unmarshal functions accept any resourceType and decode a missing code as
// the first value of its enumeration, so resourceType and required codes
// are checked on the raw JSON first ([resourceTypeOf], [decodeEncounter]).
// What callroom sends is built from its own types: that library writes
// every choice of a [x] element and drops contained resources and
// primitive extensions.
package fhir
