package app

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/immunity-app/immunity/store"
)

// Dashboard actions: Promote, Roll back, Lock, Unlock, Re-run and Deploy are forms that post
// to /actions. Each form needs a signed-in session and its CSRF token (Server.form); its
// fields become one command line of the bot's grammar, run by the same command layer and
// access grants as chat, as the session's verified identity. An action on a production
// region first answers a confirmation page, whose Confirm button posts the same fields
// again with confirm=yes. The answer (done, or refused and why) is the page shown after.

// actionsView is what a region row's buttons need.
type actionsView struct {
	Me         viewer
	App        string
	Region     regionView
	Production bool
}

// actionsOf is the region row's buttons: none for an anonymous viewer.
func actionsOf(me viewer, app string, r regionView) actionsView {
	return actionsView{Me: me, App: app, Region: r, Production: r.Production}
}

// stageActionsView is what a stage's buttons on a run page need.
type stageActionsView struct {
	Me    viewer
	Run   store.Run
	Stage stageView
}

func stageActionsOf(me viewer, r store.Run, st stageView) stageActionsView {
	return stageActionsView{Me: me, Run: r, Stage: st}
}

var (
	actionSHA  = regexp.MustCompile(`^[0-9a-f]{4,40}$`)
	actionName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// actionForm is a posted action, checked.
type actionForm struct {
	Action, App, Region, SHA, Reason string
	Run                              int64
	Force                            bool
	Back                             string
}

// Command is the form as a command line of the bot's grammar.
func (f actionForm) Command() string {
	switch f.Action {
	case "promote":
		return f.withFlag("promote "+f.App+" "+f.Region, "--release", f.SHA)
	case "rollback":
		return f.withFlag("rollback "+f.App+" "+f.Region, "--to", f.SHA)
	case "deploy":
		return f.force("deploy " + f.App + " " + f.SHA + " to " + f.Region)
	case "rerun":
		run := ""
		if f.Run > 0 {
			run = strconv.FormatInt(f.Run, 10)
		}
		return f.withFlag("rerun "+f.App+" "+f.Region, "--run", run)
	case "lock":
		return strings.TrimSpace("lock " + f.App + " " + f.Region + " " + f.Reason)
	case "unlock":
		return f.force("unlock " + f.App + " " + f.Region)
	}
	return ""
}

func (f actionForm) withFlag(cmd, flag, v string) string {
	if v == "" {
		return cmd
	}
	return cmd + " " + flag + " " + v
}

func (f actionForm) force(cmd string) string {
	if f.Force {
		return cmd + " --force"
	}
	return cmd
}

// Verb is the action as its button says it.
func (f actionForm) Verb() string {
	return map[string]string{"promote": "Promote", "rollback": "Roll back", "deploy": "Deploy", "rerun": "Re-run", "lock": "Lock", "unlock": "Unlock"}[f.Action]
}

// parseAction reads and checks the posted fields; the error says which is wrong.
func parseAction(c *gin.Context) (actionForm, string) {
	f := actionForm{Action: c.PostForm("action"), App: c.PostForm("app"), Region: c.PostForm("region"),
		SHA: strings.ToLower(strings.TrimSpace(c.PostForm("sha"))), Reason: c.PostForm("reason"),
		Force: c.PostForm("force") == "yes", Back: localPath(c.PostForm("back"))}
	if f.Verb() == "" {
		return f, "unknown action " + strconv.Quote(f.Action) + ": expected promote, rollback, deploy, rerun, lock or unlock"
	}
	if !actionName.MatchString(f.App) || !actionName.MatchString(f.Region) {
		return f, "expected an app and a region name"
	}
	if f.SHA != "" && !actionSHA.MatchString(f.SHA) {
		return f, "release " + strconv.Quote(f.SHA) + ": expected 4 to 40 hexadecimal digits of a commit"
	}
	if f.Action == "deploy" && f.SHA == "" {
		return f, "deploy needs the release (a commit SHA) to deploy"
	}
	if v := c.PostForm("run"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return f, "run " + strconv.Quote(v) + ": expected a run number"
		}
		f.Run = n
	}
	if f.Action != "lock" {
		f.Reason = ""
	}
	return f, ""
}

type confirmView struct {
	Title string
	Form  actionForm
	Me    viewer
}

func (v confirmView) viewing() viewer { return v.Me }

type actionResultView struct {
	Title, Command, Reply string
	OK                    bool
	Back                  string
	Me                    viewer
}

func (v actionResultView) viewing() viewer { return v.Me }

// action runs a dashboard form's command as the signed-in person.
func (s *Server) action(c *gin.Context) {
	who, ok := s.form(c)
	if !ok {
		return
	}
	f, bad := parseAction(c)
	if bad != "" {
		s.message(c, http.StatusBadRequest, "Not understood", bad+". Nothing was done.")
		return
	}
	me := s.viewer(c)
	if c.PostForm("confirm") != "yes" {
		sts, err := s.eng.Status(c.Request.Context(), f.App)
		if err != nil {
			s.message(c, http.StatusNotFound, "Not found", err.Error()+". Nothing was done.")
			return
		}
		for _, a := range sts {
			for _, r := range a.Regions {
				if strings.EqualFold(r.Name, f.Region) && r.Production { // commands take a region in any case
					render(c, "confirm", confirmView{Title: "confirm", Form: f, Me: me})
					return
				}
			}
		}
	}
	cmd := f.Command()
	reply, ok := s.command(c.Request.Context(), who, cmd)
	status := http.StatusOK
	if !ok {
		status = http.StatusUnprocessableEntity
	}
	renderStatus(c, status, "actionresult", actionResultView{Title: strings.ToLower(f.Verb()), Command: cmd, Reply: reply, OK: ok, Back: f.Back, Me: me})
}
