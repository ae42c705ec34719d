package mailgateway

import (
	"regexp"
	"strings"
	"unicode"
)

// Command is what a reply to a notification asks for.
type Command string

const (
	CmdNone     Command = ""
	CmdAck      Command = "ack"
	CmdResolve  Command = "resolve"
	CmdEscalate Command = "escalate"
)

// commandWords are the first words that act. Only whole words count:
// "Acknowledging in 5" is text for the thread, not an acknowledgement.
var commandWords = map[string]Command{
	"ACK": CmdAck, "ACKNOWLEDGE": CmdAck, "ACKNOWLEDGED": CmdAck,
	"RESOLVE": CmdResolve, "RESOLVED": CmdResolve,
	"ESCALATE": CmdEscalate,
}

var (
	// "On Tue, 3 Mar 2026 at 14:05, Callroom <callroom@...> wrote:", which
	// some clients wrap over two lines.
	attribution = regexp.MustCompile(`(?i)^on\b.*\bwrote:\s*$`)
	// Outlook's separators and header block of the quoted message.
	outlookSeparator = regexp.MustCompile(`^(?:-{2,}\s*Original Message\s*-{2,}|_{10,})\s*$`)
	outlookHeader    = regexp.MustCompile(`(?i)^(?:from|sent|date|to|subject):\s`)
	replyPrefixes    = regexp.MustCompile(`(?i)^(?:\s*(?:re|aw|sv|fw|fwd|wg)\s*(?:\[\d+\])?\s*:\s*)+`)
)

// stripQuoted returns what the person wrote above the quoted notification:
// lines quoted with ">" are dropped, and everything from an attribution line
// ("On ... wrote:"), an Outlook separator or a signature ("-- ") on.
func stripQuoted(text string) string {
	lines := strings.Split(text, "\n")
	var out []string
	for i := 0; i < len(lines); i++ {
		line := strings.TrimRightFunc(lines[i], unicode.IsSpace)
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, ">") {
			continue
		}
		if attribution.MatchString(trimmed) || line == "--" || lines[i] == "-- " || outlookSeparator.MatchString(trimmed) {
			break
		}
		// A two-line attribution: "On Tue, 3 Mar 2026, Callroom" / "<x@y> wrote:".
		if strings.HasPrefix(strings.ToLower(trimmed), "on ") && i+1 < len(lines) &&
			strings.HasSuffix(strings.TrimSpace(lines[i+1]), "wrote:") {
			break
		}
		// Outlook quotes without markers: "From: ..." followed by "Sent:"
		// or "Date:" within the next lines.
		if outlookHeader.MatchString(trimmed) && strings.HasPrefix(strings.ToLower(trimmed), "from:") && quotedHeaderFollows(lines[i+1:]) {
			break
		}
		out = append(out, line)
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}

func quotedHeaderFollows(lines []string) bool {
	for i := 0; i < len(lines) && i < 4; i++ {
		l := strings.ToLower(strings.TrimSpace(lines[i]))
		if strings.HasPrefix(l, "sent:") || strings.HasPrefix(l, "date:") {
			return true
		}
	}
	return false
}

// ParseReply reads the command in a reply: the first word of the text the
// person wrote (quotes stripped), or of the subject with its "Re:" removed
// when the text is empty (pagers and some phones reply in the subject).
// text is what the person wrote, for the page's thread when no command.
func ParseReply(subject, body string) (cmd Command, text string) {
	text = stripQuoted(body)
	source := text
	if source == "" {
		source = strings.TrimSpace(replyPrefixes.ReplaceAllString(subject, ""))
		// The subject of the notification itself is no command.
		if strings.HasPrefix(source, "[") {
			source = ""
		}
		text = source
	}
	word := strings.ToUpper(strings.TrimFunc(firstWord(source), func(r rune) bool {
		return unicode.IsPunct(r) || unicode.IsSymbol(r)
	}))
	return commandWords[word], text
}

func firstWord(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}
