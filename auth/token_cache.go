package auth

import (
	"slices"
	"sync"
	"time"
)

// CredentialsChannel is the channel PostgreSQL notifies (migrations/0018)
// when a commit changes what an API token may do: a token revoked, expired
// sooner or deleted, or any change to a user (deactivated, roles changed).
// Its payload is empty: it names no one.
const CredentialsChannel = "callroom_credentials"

// tokenCacheAge bounds how long a cached token is trusted without a
// lookup, even while every change is heard: a bound on the damage of a
// change made where no trigger sees it.
const tokenCacheAge = 30 * time.Second

// tokenCacheSize bounds the cache; only tokens that authenticated are kept,
// so it fills only with many valid tokens, and is then emptied.
const tokenCacheSize = 10000

// tokenCache keeps the API tokens that authenticated recently, so a client
// sending many requests costs one lookup in PostgreSQL per tokenCacheAge
// instead of one per request.
//
// Why: at 1,000 pages a second, the lookup of the caller's token was a
// round trip and a backend's wake-up per request, about a fifth of the
// database's time per page (docs/PERFORMANCE.md).
//
// It is never staler than a commit's notification: PostgreSQL notifies
// CredentialsChannel in the transaction of every change that could make a
// cached token fail (revoked, expired, deleted, its user changed or
// removed), and the instance's events hub hands each notification to
// CredentialsChanged, which empties the cache. While the hub is not
// listening (starting, or reconnecting), nothing is cached or served from
// the cache: every request is looked up, as without a cache.
//
// A lookup that raced a change cannot store the old answer: each change,
// and each loss or return of the listener, starts a new generation, and an
// answer is kept only if no generation started while it was read.
//
// A nil *tokenCache keeps nothing.
type tokenCache struct {
	mu        sync.Mutex
	listening bool
	gen       uint64
	tokens    map[string]cachedToken
	now       func() time.Time
}

type cachedToken struct {
	row     credentialRow
	expires *time.Time // the token's own expiry
	until   time.Time  // tokenCacheAge after it was read
}

func newTokenCache() *tokenCache {
	return &tokenCache{tokens: map[string]cachedToken{}, now: time.Now}
}

// get returns the cached row of the token whose hash is key, and the
// generation to store a looked-up row with otherwise.
func (c *tokenCache) get(key string) (credentialRow, bool, uint64) {
	if c == nil {
		return credentialRow{}, false, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tokens[key]
	if !ok || !c.listening {
		return credentialRow{}, false, c.gen
	}
	now := c.now()
	if now.After(t.until) || (t.expires != nil && !now.Before(*t.expires)) {
		delete(c.tokens, key)
		return credentialRow{}, false, c.gen
	}
	row := t.row
	row.Roles = slices.Clone(row.Roles) // the caller's to change
	return row, true, c.gen
}

// put keeps row, read at generation gen, unless a change was heard since
// or the hub is not listening.
func (c *tokenCache) put(key string, row credentialRow, expires *time.Time, gen uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.listening || gen != c.gen {
		return
	}
	if len(c.tokens) >= tokenCacheSize {
		clear(c.tokens)
	}
	c.tokens[key] = cachedToken{row: row, expires: expires, until: c.now().Add(tokenCacheAge)}
}

// used records that the token was used at, as PostgreSQL now does.
func (c *tokenCache) used(key string, at time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.tokens[key]; ok {
		t.row.LastUsed = &at
		c.tokens[key] = t
	}
}

// forget empties the cache and starts a new generation.
func (c *tokenCache) forget() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.tokens)
}

// setListening records whether changes are heard; either way, what was
// kept before may have missed one.
func (c *tokenCache) setListening(on bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listening = on
	c.gen++
	clear(c.tokens)
}
