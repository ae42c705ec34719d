package main

import (
	"crypto/tls"
	"os"
	"sync"
	"time"
)

// keyPair is a certificate and key loaded from files and reloaded when
// either file's modification time changes (checked at most every 10 s).
type keyPair struct {
	certFile, keyFile string

	mu       sync.Mutex
	cert     *tls.Certificate
	modTimes [2]time.Time
	checked  time.Time
}

func (k *keyPair) get() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cert != nil && time.Since(k.checked) < 10*time.Second {
		return k.cert, nil
	}
	k.checked = time.Now()
	var mt [2]time.Time
	for i, f := range []string{k.certFile, k.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			if k.cert != nil {
				return k.cert, nil // keep serving the last good pair
			}
			return nil, err
		}
		mt[i] = st.ModTime()
	}
	if k.cert != nil && mt == k.modTimes {
		return k.cert, nil
	}
	c, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		if k.cert != nil {
			return k.cert, nil // a half-written renewal; try again later
		}
		return nil, err
	}
	k.cert, k.modTimes = &c, mt
	return k.cert, nil
}
