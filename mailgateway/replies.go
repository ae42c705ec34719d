package mailgateway

import "github.com/emersion/go-smtp"

// The gateway's refusals, in one place so the codes stay consistent with the
// table in the package documentation. Texts say what to do about it and
// never echo what the sender wrote.
var (
	// errTemporary is every failure that is ours, not the message's: the
	// sender's MTA queues the message and retries, so nothing is lost.
	errTemporary = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Temporary failure, nothing was accepted; please retry"}
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message: "Authentication required: your network may not send here unauthenticated; STARTTLS, then AUTH PLAIN"}
	errBadSenderSyntax = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 7},
		Message: "Bad sender address syntax"}
	errUnknownRecipient = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
		Message: "No such service, person or reply address here"}
	errAmbiguousRecipient = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 4},
		Message: "Several people match this address; use page+<user id> or page+<local part>=<domain>"}
	errRelayDenied = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "Relaying denied: this server accepts mail for its own domains only"}
	errSenderNotAllowed = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "This sender may not page; authenticate or ask for the sender to be allowed"}
	errNullSender = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "Bounces (null sender) cannot page"}
	errNotReplySender = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "Replies to this address are accepted only from the person it was sent to"}
	errHeaderTooLarge = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
		Message: "Message header too large"}
	errMalformed = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
		Message: "Malformed message: the header or MIME structure cannot be read"}
	errEmpty = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
		Message: "Message has neither a subject nor any text to page with"}
)
