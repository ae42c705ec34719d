package mailgateway

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/emersion/go-message/mail"

	"github.com/callroom/callroom/escalation"
)

// Priority comes from whichever signal the sender could set; the highest
// wins, and the default is routine.
//
//   - MT-Priority (RFC 6710, -9..9) is set by systems that mean it, so it
//     maps onto the whole scale. The thresholds follow the RFC's profiles:
//     MIXER "urgent" and STANAG 4406 "flash"/"override" are 4 and up (stat),
//     STANAG "immediate" is 2 (asap), 1 is urgent, 0 and below routine.
//   - Importance: high, X-Priority: 1 or 2 and Priority: urgent are what mail
//     clients set when a person ticks "high importance"; they mean urgent,
//     never stat, because a ticked box must not wake the whole chain.
//   - A subject starting with "STAT:", "ASAP:" or "URGENT:" (or "[STAT]")
//     is how people and simple devices say it; the prefix is stripped from
//     the summary.
//   - An address tag (cardiology+stat@) is for devices that can set neither.
var priorityRank = map[escalation.Priority]int{
	escalation.Routine: 0, escalation.Urgent: 1, escalation.ASAP: 2, escalation.Stat: 3,
}

func maxPriority(ps ...escalation.Priority) escalation.Priority {
	best := escalation.Routine
	for _, p := range ps {
		if priorityRank[p] > priorityRank[best] {
			best = p
		}
	}
	return best
}

// parsePriority reads a priority name as used in subject prefixes and
// address tags.
func parsePriority(s string) (escalation.Priority, bool) {
	switch p := escalation.Priority(strings.ToLower(s)); p {
	case escalation.Routine, escalation.Urgent, escalation.ASAP, escalation.Stat:
		return p, true
	}
	return "", false
}

// mtPriority maps an RFC 6710 priority value.
func mtPriority(n int) escalation.Priority {
	switch {
	case n >= 4:
		return escalation.Stat
	case n >= 2:
		return escalation.ASAP
	case n == 1:
		return escalation.Urgent
	}
	return escalation.Routine
}

func headerPriority(h mail.Header) escalation.Priority {
	p := escalation.Routine
	if v := firstToken(h.Get("MT-Priority")); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= -9 && n <= 9 {
			p = maxPriority(p, mtPriority(n))
		}
	}
	if strings.EqualFold(firstToken(h.Get("Importance")), "high") {
		p = maxPriority(p, escalation.Urgent)
	}
	if v := firstToken(h.Get("X-Priority")); v == "1" || v == "2" {
		p = maxPriority(p, escalation.Urgent)
	}
	if strings.EqualFold(firstToken(h.Get("Priority")), "urgent") {
		p = maxPriority(p, escalation.Urgent)
	}
	return p
}

// firstToken is the value up to the first space, parenthesis or semicolon:
// "1 (Highest)" -> "1".
func firstToken(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexAny(v, " \t(;"); i >= 0 {
		v = v[:i]
	}
	return v
}

var subjectPrefix = regexp.MustCompile(`(?i)^\s*(?:\[(stat|asap|urgent)\]\s*:?|(stat|asap|urgent)\s*:)\s*`)

// subjectPriority strips a leading priority marker and returns it.
func subjectPriority(s string) (string, escalation.Priority) {
	m := subjectPrefix.FindStringSubmatch(s)
	if m == nil {
		return s, ""
	}
	p, _ := parsePriority(m[1] + m[2])
	return s[len(m[0]):], p
}
