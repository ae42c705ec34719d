package auth

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestTokenCache(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 18, 0, 0, 0, time.UTC)
	row := credentialRow{CredID: uuid.New(), User: User{ID: uuid.New(), Roles: []Role{Nurse}}}
	soon := t0.Add(20 * time.Second) // before tokenCacheAge
	for _, tc := range []struct {
		name    string
		expires *time.Time
		// between runs after the lookup read gen and before it stores
		// its answer; after runs before the next request.
		between, after func(c *tokenCache, now *time.Time)
		served         bool
	}{
		{name: "kept while listening", served: true},
		{name: "kept until the token expires", expires: &soon, served: true,
			after: func(_ *tokenCache, now *time.Time) { *now = now.Add(19 * time.Second) }},
		{name: "not past the token's expiry", expires: &soon,
			after: func(_ *tokenCache, now *time.Time) { *now = now.Add(20 * time.Second) }},
		{name: "not past its age",
			after: func(_ *tokenCache, now *time.Time) { *now = now.Add(tokenCacheAge + time.Nanosecond) }},
		{name: "a change heard",
			after: func(c *tokenCache, _ *time.Time) { c.forget() }},
		{name: "a change heard while it was looked up",
			between: func(c *tokenCache, _ *time.Time) { c.forget() }},
		{name: "the listener lost",
			after: func(c *tokenCache, _ *time.Time) { c.setListening(false) }},
		{name: "the listener lost and back",
			after: func(c *tokenCache, _ *time.Time) { c.setListening(false); c.setListening(true) }},
		{name: "the listener lost while it was looked up",
			between: func(c *tokenCache, _ *time.Time) { c.setListening(false); c.setListening(true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := t0
			c := newTokenCache()
			c.now = func() time.Time { return now }
			c.setListening(true)
			if _, ok, _ := c.get("k"); ok {
				t.Fatal("an empty cache served a token")
			}
			_, _, gen := c.get("k")
			if tc.between != nil {
				tc.between(c, &now)
			}
			c.put("k", row, tc.expires, gen)
			if tc.after != nil {
				tc.after(c, &now)
			}
			got, ok, _ := c.get("k")
			if ok != tc.served {
				t.Fatalf("served = %v, want %v", ok, tc.served)
			}
			if ok && got.CredID != row.CredID {
				t.Fatalf("served %v, want %v", got.CredID, row.CredID)
			}
		})
	}

	t.Run("not kept unless listening", func(t *testing.T) {
		c := newTokenCache()
		_, _, gen := c.get("k")
		c.put("k", row, nil, gen)
		c.setListening(true)
		if _, ok, _ := c.get("k"); ok {
			t.Fatal("a token looked up while not listening was kept")
		}
	})
	t.Run("the caller's roles are its own", func(t *testing.T) {
		c := newTokenCache()
		c.setListening(true)
		_, _, gen := c.get("k")
		c.put("k", row, nil, gen)
		got, _, _ := c.get("k")
		got.Roles[0] = Admin
		if again, _, _ := c.get("k"); again.Roles[0] != Nurse {
			t.Fatalf("a caller changed the cached roles to %v", again.Roles)
		}
	})
	t.Run("nil keeps nothing", func(t *testing.T) {
		var c *tokenCache
		c.setListening(true)
		c.put("k", row, nil, 0)
		if _, ok, _ := c.get("k"); ok {
			t.Fatal("a nil cache served a token")
		}
	})
}
