package mailgateway

import (
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/callroom/callroom/auth"
)

// credentials checks AUTH PLAIN against the configured internal senders.
//
// argon2id costs 19 MiB per check, so checks run a few at a time: a burst
// of AUTH attempts queues instead of exhausting memory. An unknown username
// is checked against a dummy hash, so it takes as long as a wrong password,
// and every failure waits failDelay, which slows guessing without locking
// out a misconfigured analyzer for good.
type credentials struct {
	hashes    map[string]string
	dummy     string
	sem       chan struct{}
	failDelay time.Duration
}

func newCredentials(list []Credential) (*credentials, error) {
	c := &credentials{hashes: map[string]string{}, sem: make(chan struct{}, 4), failDelay: time.Second}
	for _, cr := range list {
		c.hashes[cr.Username] = cr.Hash
	}
	if len(list) > 0 {
		d, err := auth.HashPassword("callroom-mailgateway-no-such-user")
		if err != nil {
			return nil, err
		}
		c.dummy = d
	}
	return c, nil
}

func (c *credentials) any() bool { return len(c.hashes) > 0 }

// check reports whether password is username's. Passwords longer than
// auth.MaxPasswordLength are refused without hashing.
func (c *credentials) check(username, password string) bool {
	hash, known := c.hashes[username]
	if !known {
		hash = c.dummy
	}
	ok := false
	if len(password) <= auth.MaxPasswordLength {
		c.sem <- struct{}{}
		if strings.HasPrefix(hash, "$2") {
			ok = bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
		} else {
			ok, _ = auth.CheckPassword(hash, password)
		}
		<-c.sem
	}
	if !ok || !known {
		time.Sleep(c.failDelay)
		return false
	}
	return true
}
