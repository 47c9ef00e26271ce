package slackbot

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/slack-go/slack"
)

// slackHooksHost is where Slack's response_urls point.
const slackHooksHost = "hooks.slack.com"

// checkResponseURL accepts only a response_url Slack could have sent: https on
// hooks.slack.com, or the scheme and host of the configured Web API URL (a fake Slack in
// tests). Anything else is refused before a byte is sent, so a request that got past the
// signature check still cannot make the server post to an address of its choosing.
func checkResponseURL(raw, apiURL string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return fmt.Errorf("response_url %q is not an absolute URL", clip(raw, 100))
	}
	if u.Scheme == "https" && strings.EqualFold(u.Host, slackHooksHost) {
		return nil
	}
	if api, err := url.Parse(apiURL); err == nil && api.Host != "" && u.Scheme == api.Scheme && strings.EqualFold(u.Host, api.Host) {
		return nil
	}
	return fmt.Errorf("response_url %q refused: expected https://%s/…", clip(raw, 100), slackHooksHost)
}

// postResponse posts msg to a command's or button's response_url, if it is Slack's.
func (b *Bot) postResponse(ctx context.Context, respURL string, msg *slack.WebhookMessage) error {
	if err := checkResponseURL(respURL, b.cfg.Slack.BaseURL()); err != nil {
		return err
	}
	return slack.PostWebhookContext(ctx, respURL, msg)
}
