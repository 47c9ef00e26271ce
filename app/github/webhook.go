package github

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// MaxBody is the largest webhook body accepted (GitHub caps payloads at 25 MB).
const MaxBody = 25 << 20

// Routes registers the webhook endpoint.
func (a *App) Routes(r gin.IRouter) {
	r.POST("/webhooks/github", a.Webhook)
}

// Webhook is the handler of POST /webhooks/github: it verifies, records and acknowledges
// a delivery; the work happens afterwards.
func (a *App) Webhook(c *gin.Context) {
	start := time.Now()
	event := "unverified" // the header is only GitHub's word once the signature holds
	observe := func(outcome string) { a.obs.Delivery(event, outcome, time.Since(start)) }
	if ct := c.ContentType(); ct == "application/x-www-form-urlencoded" {
		a.log.Warn("github webhook refused: form-encoded; the App's webhook content type must be application/json")
		c.String(http.StatusBadRequest, "this delivery is form-encoded: set the webhook content type to application/json\n")
		observe("bad_request")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, a.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			a.log.Warn("github webhook refused: body too large", "limit", a.maxBody)
			c.String(http.StatusRequestEntityTooLarge, "body over %d bytes\n", a.maxBody)
			observe("too_large")
			return
		}
		c.String(http.StatusBadRequest, "read body: %v\n", err)
		observe("bad_request")
		return
	}
	if err := checkSignature(a.secret, c.GetHeader("X-Hub-Signature-256"), body); err != nil {
		a.log.Warn("github webhook refused", "err", err, "remote", c.ClientIP())
		c.String(http.StatusUnauthorized, "%v\n", err)
		observe("unauthorized")
		return
	}
	event = c.GetHeader("X-GitHub-Event")
	payload, err := decode(event, body)
	if err != nil {
		c.String(http.StatusBadRequest, "%v\n", err)
		observe("bad_request")
		return
	}
	d, err := describe(event, c.GetHeader("X-GitHub-Delivery"), payload, body)
	if err != nil {
		c.String(http.StatusBadRequest, "%v\n", err)
		observe("bad_request")
		return
	}
	if ev, ok := payload.(*gateEvent); ok {
		// GitHub waits for the answer: the request is in the store before it is answered.
		var bad badRequest
		if err := a.recordGate(c.Request.Context(), ev); errors.As(err, &bad) {
			a.log.Warn("github gate request refused", "delivery", d.ID, "err", err)
			c.String(http.StatusBadRequest, "%v\n", err)
			observe("bad_request")
			return
		} else if err != nil {
			a.log.Error("github gate request", "delivery", d.ID, "err", err)
			c.String(http.StatusInternalServerError, "could not record the deployment protection rule request\n")
			observe("error")
			return
		}
	}
	fresh, err := a.ingest.Record(c.Request.Context(), d)
	if err != nil {
		a.log.Error("github webhook", "delivery", d.ID, "err", err)
		c.String(http.StatusInternalServerError, "could not record the delivery\n")
		observe("error")
		return
	}
	if !fresh {
		a.log.Info("github delivery ignored: seen before", "delivery", d.ID, "event", d.Event, "key", d.DedupeKey)
		c.JSON(http.StatusOK, gin.H{"status": "duplicate"})
		observe("duplicate")
		return
	}
	a.dispatch(d, payload)
	c.JSON(http.StatusAccepted, gin.H{"status": "accepted"})
	observe("accepted")
}

// checkSignature checks X-Hub-Signature-256 against the HMAC-SHA256 of body.
func checkSignature(secret []byte, header string, body []byte) error {
	if header == "" {
		return errors.New("missing X-Hub-Signature-256")
	}
	hexSum, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return errors.New("X-Hub-Signature-256: expected sha256=HEX")
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return errors.New("X-Hub-Signature-256: expected sha256=HEX")
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return errors.New("X-Hub-Signature-256 does not match the body")
	}
	return nil
}
