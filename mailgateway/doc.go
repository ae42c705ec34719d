// Package mailgateway turns inbound email into pages, and replies to
// notification emails into acknowledgements.
//
// Hospitals page by email more than anyone admits: lab analyzers, answering
// services, monitoring systems and old nurse-call bridges can all send mail
// and little else. The gateway is an SMTP server (emersion/go-smtp) that
// accepts mail for its own domains only and never relays.
//
// # Addresses
//
// For a served domain such as pager.example.org:
//
//   - <alias>@pager.example.org pages the service whose email_alias is the
//     whole address or its local part ("cardiology"). <alias>+<priority>@...
//     (cardiology+stat@...) pages it at least at that priority, for senders
//     that can set an address but no header.
//   - page+<who>@pager.example.org pages one person directly. <who> is the
//     user's id (page+6f1c...@), the local part of their email address
//     (page+jane.doe@) when no other active user shares it, or their whole
//     email address with "=" for "@" (page+jane.doe=hospital.example.org@).
//   - reply+<notification id>.<mac>@pager.example.org is the Reply-To of a
//     notification email (see ReplyAddress). A reply from the notified
//     person whose first word is ACK, RESOLVE or ESCALATE does that to the
//     page as that person.
//
// Anything else is refused at RCPT with 550 5.1.1, before any data is read.
//
// # Who may send
//
// A client must either send from an allowed network (CIDRs, loopback by
// default) or authenticate with AUTH PLAIN, which is only offered after
// STARTTLS. Unauthenticated senders may only page from an allowed envelope
// sender when that list is set. Replies need no list: the reply address is
// unguessable and only the notified person's address may use it.
//
// # Replies the gateway gives
//
//	250 2.0.0      the pages committed (page row, timeline, audit and first
//	               escalation job in one transaction each), or the reply
//	               was handled
//	451 4.3.0      the database failed: nothing was lost, retry
//	452 4.5.3      more recipients than allowed in one transaction
//	530 5.7.0      neither authenticated nor from an allowed network
//	535 5.7.8      bad credentials
//	550 5.1.1      no such service, person or reply address
//	550 5.1.4      page+<local part> matches several people
//	550 5.7.1      relaying denied, sender not allowed to page, or a reply
//	               from someone other than the notified person
//	552 5.3.4      message or header block too large
//	554 5.6.0      malformed message, or neither subject nor text
//
// # Pages from one message
//
// Each page's dedup key is derived from the Message-ID ("msgid:" and a hash),
// so the same message delivered twice, or retried after a 451, makes one page
// per recipient while that page is open. A message to several services makes
// one page per service. escalation.Store.Create commits one page per
// transaction, so when the second of two pages fails the first already
// exists and the gateway still answers 451: the retry finds it by its dedup
// key and creates only what is missing, so the sender's retry completes the
// set without duplicates. A page store that offers CreateBatch (see
// BatchCreator) gets all pages of a message in one transaction instead.
//
// # What is never written down
//
// Subjects and bodies are PHI. They go into the page and nowhere else: not
// into logs, audit details, timelines or SMTP replies. Reply text that is not
// a command goes to the OnReplyText hook (the page's thread), never to the
// timeline.
package mailgateway
