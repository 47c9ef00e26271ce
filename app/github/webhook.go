package github

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/immunity-app/immunity/store"
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
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, a.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			a.log.Warn("github webhook refused: body too large", "limit", a.maxBody)
			c.String(http.StatusRequestEntityTooLarge, "body over %d bytes\n", a.maxBody)
			return
		}
		c.String(http.StatusBadRequest, "read body: %v\n", err)
		return
	}
	if err := checkSignature(a.secret, c.GetHeader("X-Hub-Signature-256"), body); err != nil {
		a.log.Warn("github webhook refused", "err", err, "remote", c.ClientIP())
		c.String(http.StatusUnauthorized, "%v\n", err)
		return
	}
	d, err := describe(c.GetHeader("X-GitHub-Event"), c.GetHeader("X-GitHub-Delivery"), body)
	if err != nil {
		c.String(http.StatusBadRequest, "%v\n", err)
		return
	}
	fresh, err := a.st.RecordDelivery(c.Request.Context(), d)
	if err != nil {
		a.log.Error("github webhook", "delivery", d.ID, "err", err)
		c.String(http.StatusInternalServerError, "could not record the delivery\n")
		return
	}
	if !fresh {
		a.log.Info("github delivery ignored: seen before", "delivery", d.ID, "event", d.Event, "key", d.DedupeKey)
		c.JSON(http.StatusOK, gin.H{"status": "duplicate"})
		return
	}
	a.dispatch(d, body)
	c.JSON(http.StatusAccepted, gin.H{"status": "accepted"})
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

// envelope is the part of every payload needed before routing.
type envelope struct {
	Action     string `json:"action"`
	Ref        string `json:"ref"`
	Before     string `json:"before"`
	After      string `json:"after"`
	Repository *struct {
		FullName string `json:"full_name"`
	} `json:"repository"`
	Comment *struct {
		ID int64 `json:"id"`
	} `json:"comment"`
}

// describe reads a delivery's identity and its dedupe key: a comment's id, a push's
// ref and head. Two deliveries of one of those (an org hook and a repo hook) are one event.
func describe(event, id string, body []byte) (store.Delivery, error) {
	if event == "" || id == "" {
		return store.Delivery{}, errors.New("missing X-GitHub-Event or X-GitHub-Delivery")
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return store.Delivery{}, fmt.Errorf("%s payload: %w", event, err)
	}
	d := store.Delivery{ID: id, Event: event, Action: env.Action}
	if env.Repository != nil {
		d.Repo = env.Repository.FullName
	}
	switch {
	case (event == "issue_comment" || event == "commit_comment") && env.Comment != nil:
		d.DedupeKey = event + ":" + strconv.FormatInt(env.Comment.ID, 10) + ":" + env.Action
	case event == "push" && env.After != "":
		d.DedupeKey = "push:" + strings.ToLower(d.Repo) + ":" + env.Ref + ":" + env.Before + ":" + env.After
	}
	return d, nil
}
