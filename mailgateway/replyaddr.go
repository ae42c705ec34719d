package mailgateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/google/uuid"
)

// Reply addresses look like
//
//	reply+6f1c2a9e-0b7d-4c1e-9a55-3d2f8e7b6a10.3f9a0c1d2e4b5a6978c1@pager.example.org
//
// The notification id says which page and which person; the MAC says callroom
// wrote the address, so nobody can acknowledge a page by guessing ids. The
// MAC is 80 bits of HMAC-SHA256 in lowercase hex: hex survives mail systems
// that fold local parts to lower case, and the whole local part is 63
// characters, within RFC 5321's 64.
const (
	replyPrefix  = "reply+"
	replyMACHex  = 20
	replyContext = "callroom reply address v1\x00"
)

// ErrBadReplyAddress means an address is not a reply address this secret
// made.
var ErrBadReplyAddress = errors.New("mailgateway: not a valid reply address")

func replyMAC(secret []byte, id uuid.UUID) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(replyContext))
	m.Write(id[:])
	return hex.EncodeToString(m.Sum(nil))[:replyMACHex]
}

// ReplyAddress is the Reply-To for one notification email. escalation sets
// notify.Notice.ReplyTo from it, so a clinician can acknowledge by replying
// "ACK" from their phone's mail app.
func ReplyAddress(secret []byte, domain string, notificationID uuid.UUID) string {
	return replyPrefix + notificationID.String() + "." + replyMAC(secret, notificationID) + "@" + normalizeDomain(domain)
}

// ParseReplyAddress returns the notification id of a reply address (a whole
// address or its local part) if its MAC verifies under secret. It does not
// check the domain; the gateway has already refused foreign domains.
func ParseReplyAddress(secret []byte, address string) (uuid.UUID, error) {
	if len(secret) == 0 {
		return uuid.Nil, ErrBadReplyAddress
	}
	local := address
	if i := strings.LastIndexByte(address, '@'); i >= 0 {
		local = address[:i]
	}
	rest, ok := strings.CutPrefix(strings.ToLower(local), replyPrefix)
	if !ok {
		return uuid.Nil, ErrBadReplyAddress
	}
	idPart, mac, ok := strings.Cut(rest, ".")
	if !ok || len(idPart) != 36 || len(mac) != replyMACHex {
		return uuid.Nil, ErrBadReplyAddress
	}
	id, err := uuid.Parse(idPart)
	if err != nil {
		return uuid.Nil, ErrBadReplyAddress
	}
	if !hmac.Equal([]byte(mac), []byte(replyMAC(secret, id))) {
		return uuid.Nil, ErrBadReplyAddress
	}
	return id, nil
}
