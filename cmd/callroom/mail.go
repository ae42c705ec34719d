package main

import (
	"errors"
	"net/netip"
	"os"
	"strings"

	"github.com/callroom/callroom/mailgateway"
)

// mailConfig turns the CALLROOM_SMTP_* settings into the gateway's
// configuration, or nil when CALLROOM_SMTP_ADDR is not set. The reply secret
// comes from the environment only (CALLROOM_SMTP_REPLY_SECRET), so it does
// not show in the process list.
func mailConfig(cfg *config) (*mailgateway.Config, error) {
	if cfg.mailAddr == "" {
		return nil, nil
	}
	mc := &mailgateway.Config{Addr: cfg.mailAddr, Domains: mailgateway.ParseList(cfg.mailDomains),
		MaxMessageBytes: int64(cfg.mailMaxBytes), AllowedSenders: mailgateway.ParseList(cfg.mailSenders)}
	if strings.EqualFold(strings.TrimSpace(cfg.mailNetworks), "none") {
		mc.AllowedNetworks = []netip.Prefix{}
	} else {
		nets, err := mailgateway.ParseNetworks(cfg.mailNetworks)
		if err != nil {
			return nil, err
		}
		mc.AllowedNetworks = nets
	}
	if (cfg.mailTLSCert == "") != (cfg.mailTLSKey == "") {
		return nil, errors.New("set both CALLROOM_SMTP_TLS_CERT and CALLROOM_SMTP_TLS_KEY, or neither")
	}
	if cfg.mailTLSCert != "" {
		tc, err := mailgateway.LoadTLS(cfg.mailTLSCert, cfg.mailTLSKey)
		if err != nil {
			return nil, err
		}
		mc.TLSConfig = tc
	}
	if cfg.mailUsersFile != "" {
		creds, err := mailgateway.LoadCredentials(cfg.mailUsersFile)
		if err != nil {
			return nil, err
		}
		mc.Credentials = creds
	}
	secret, err := mailgateway.ParseSecret(os.Getenv("CALLROOM_SMTP_REPLY_SECRET"))
	if err != nil {
		return nil, err
	}
	mc.ReplySecret = secret
	return mc, nil
}
