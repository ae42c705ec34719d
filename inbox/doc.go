// Package inbox is callroom's secure messaging: conversations about a
// patient, for a group (a unit, a team) or between two people, with the
// guarantees a clinical record needs.
//
//   - Confidentiality at rest: message text, attachment bytes and attachment
//     file names are sealed by a [Sealer] before they reach the database,
//     with associated data naming the row ("message:<id>:<version>"), so a
//     dump holds no readable PHI and a blob moved onto another row does not
//     open. Events carry ids only.
//   - Access: only current members read or post. A refusal answers
//     callroom.ErrForbidden and is written to the audit trail with outcome
//     denied; every read of a patient's thread is audited with its
//     patient_ref.
//   - Nothing a person wrote is erased by editing or recalling: an edit adds
//     a version, a recall hides the message from members, and auditors and
//     administrators still read every version. Only retention erases, and
//     only the sealed bytes of messages older than the thread kind's policy,
//     never under legal hold; the rows and the audit trail stay.
//
// Pages about a patient post into that patient's thread ([Store.PostPage]),
// so the conversation around a page sits with the patient, and the thread's
// members can acknowledge the page from there.
//
// Who may do what is decided here (permission.go), not in auth's role
// table: membership is the main permission, and it is per thread.
package inbox
