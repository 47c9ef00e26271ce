package app

import (
	"net/http"
	"net/url"
	"strconv"
	"unicode"

	"github.com/gin-gonic/gin"

	"github.com/immunity-app/immunity/store"
)

// auditPageSize is how many audit entries the audit page shows at a time.
const auditPageSize = 50

// auditPage is the whole audit log, newest first, a page at a time, filtered by app,
// region and person (an actor's verified id or display name).
type auditPage struct {
	Title               string
	App, Region, Person string
	Entries             []store.Audit
	Before              int64
	OlderURL, NewestURL string // links to the next page back and to the newest page ("": none)
}

func (s *Server) auditPageHandler(c *gin.Context) {
	p := auditPage{Title: "audit log", App: c.Query("app"), Region: c.Query("region"), Person: c.Query("person")}
	for _, v := range []string{p.App, p.Region, p.Person} {
		if len(v) > 200 || hasControl(v) {
			c.String(http.StatusBadRequest, "a filter is at most 200 characters, without control characters")
			return
		}
	}
	var err error
	if p.Before, err = pageBefore(c); err != nil {
		c.String(http.StatusBadRequest, err.Error())
		return
	}
	entries, err := s.eng.Store().AuditPage(c.Request.Context(), store.AuditFilter{App: p.App, Region: p.Region, Person: p.Person,
		Before: p.Before, Limit: auditPageSize + 1})
	if err != nil {
		c.String(http.StatusInternalServerError, "audit log: %v", err)
		return
	}
	if len(entries) > auditPageSize {
		entries = entries[:auditPageSize]
		p.OlderURL = p.url(entries[len(entries)-1].ID)
	}
	if p.Before != 0 {
		p.NewestURL = p.url(0)
	}
	p.Entries = entries
	render(c, "auditpage", p)
}

// url is this page's filters paging back from an entry id (0: the newest page).
func (p auditPage) url(before int64) string {
	q := url.Values{}
	for k, v := range map[string]string{"app": p.App, "region": p.Region, "person": p.Person} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if before != 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	if len(q) == 0 {
		return "/audit"
	}
	return "/audit?" + q.Encode()
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}
