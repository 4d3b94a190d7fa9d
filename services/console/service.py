"""console: the command-centre web page (一屏观全域) — the inbox, the map, a case's page and its
actions, server-rendered (Jinja2) with a little JavaScript, in Chinese by default and English.

A person signs in with their JWT (the embedded issuer's `onegrid people token`, or a county
provider's; docs/console.md) into an HttpOnly, Secure, SameSite=Strict cookie; every POST from
a form carries a CSRF token. Reads go through the CaseReader port (the store supervision's
queries read); actions are supervision's use cases over RPC, attributed to the person. The use
cases are onegrid/app/console.py's; what a person may do is onegrid/domain/access.py's.
"""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from urllib.parse import quote

from marshmallow import ValidationError
from nameko.exceptions import RemoteError
from nameko.rpc import RpcProxy
from nameko.web.handlers import http
from werkzeug.wrappers import Response

from onegrid.adapters.identity import MAX_TTL
from onegrid.adapters.nameko.httpjson import ANSWERED, Failure, failure_of
from onegrid.adapters.nameko.people import People
from onegrid.adapters.nameko.providers import Observable, RedisStore, TenantContext
from onegrid.adapters.nameko.web import Evidence, Pages
from onegrid.adapters.redis.auth import Forbidden, Unauthorized
from onegrid.adapters.redis.duplicates import DuplicateBook
from onegrid.adapters.reports import FILES
from onegrid.adapters.web import i18n, render
from onegrid.adapters.web import session as web
from onegrid.app.console import Console, grid_features
from onegrid.domain import console as dc
from onegrid.domain import ladder as ld
from onegrid.domain.access import SCOPE_LEVEL, Principal, Resource, case_resource, check_case_id, check_work_order_id
from onegrid.domain.cases import case_of_work_order
from onegrid.domain.lifecycle import TransitionRefused
from onegrid.kernel import settings

STATIC = Path(__file__).resolve().parent / "static"
STATIC_NAME = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*\.(css|js|png|svg|txt)$")
PHOTO_NAME = re.compile(r"^[0-9a-f]{64}\.(jpg|png|webp)$")
MIME = {"css": "text/css", "js": "text/javascript", "png": "image/png", "svg": "image/svg+xml", "txt": "text/plain"}
MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
REPORT_FILES = FILES  # the month's files, as scoring makes them (onegrid.adapters.reports)
REMOTE_STATUS = {"TransitionRefused": 409, "ValidationError": 400, "LookupError": 404, "KeyError": 404}


class Redirect(Exception):
    def __init__(self, location: str, cookies: tuple[str, ...] = ()):
        super().__init__(location)
        self.location, self.cookies = location, cookies


class ConsoleService(Observable):
    name = "console"
    ctx = TenantContext()
    store = RedisStore()
    people = People()
    pages = Pages()
    photos = Evidence()
    supervision = RpcProxy("supervision")
    scoring = RpcProxy("scoring")

    @property
    def console(self) -> Console:
        return Console(self.ctx.tenant, self.store, self.supervision, DuplicateBook(self.store))

    # -- signing in --------------------------------------------------------------------------
    @http("GET", "/console")
    def home(self, request):
        signed_in = request.cookies.get(web.COOKIE) or request.headers.get("Authorization")
        return self._page(request, lambda lang: _redirect("/console/inbox" if signed_in else "/console/signin"))

    @http("GET", "/console/signin")
    def signin_form(self, request):
        def run(lang):
            error = request.args.get("error", "")[:200]
            return self._html("signin.html", lang, None, error=error, external=self.ctx.tenant.identity is not None)

        return self._page(request, run)

    @http("POST", "/console/signin")
    def signin(self, request):
        """The token (a person's JWT) is verified like any bearer token, then kept in the
        session cookie for as long as it lives (at most the issuer's MAX_TTL)."""

        def run(lang):
            token = (request.form.get("token") or "").strip()
            try:
                who = self.people.who(request, "console.signin", "console", session=token or "-")
            except Unauthorized as exc:
                raise Redirect("/console/signin?error=" + _q(exc.detail)) from None
            if not who.person:
                raise Redirect("/console/signin?error=" + _q("a department's token is not a person's"))
            return _redirect("/console/inbox", web.session_cookie(token, MAX_TTL))

        return self._page(request, run)

    @http("POST", "/console/signout")
    def signout(self, request):
        return self._page(request, lambda lang: _redirect("/console/signin", web.cleared_cookie()))

    @http("GET", "/console/lang/<string:lang>")
    def switch_lang(self, request, lang):
        def run(_):
            if lang not in i18n.LANGS:
                raise LookupError(f"no language {lang[:20]!r}; zh or en")
            back = request.args.get("next", "/console")
            back = back if back.startswith("/console") and "//" not in back and "\\" not in back else "/console"
            return _redirect(back, web.lang_cookie(lang))

        return self._page(request, run)

    @http("GET", "/console/static/<path:name>")
    def static(self, request, name):
        if not STATIC_NAME.match(name) or ".." in name or not (STATIC / name).is_file():
            return _text(404, "not found")
        resp = Response((STATIC / name).read_bytes(), mimetype=MIME[name.rsplit(".", 1)[1]])
        resp.headers["Cache-Control"] = "public, max-age=3600"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        return resp

    # -- the inbox and the map ---------------------------------------------------------------
    @http("GET", "/console/inbox")
    def inbox(self, request):
        def run(lang):
            who = self._inbox_reader(request)
            trays = self.console.inbox(who)
            return self._html("inbox.html", lang, who, request=request, trays=trays, now=time.time())

        return self._page(request, run)

    @http("GET", "/console/inbox/trays")
    def inbox_trays(self, request):
        """The trays alone: what the page's script fetches every few seconds (live counts)."""

        def run(lang):
            who = self._inbox_reader(request)
            return self._html("_trays.html", lang, who, request=request, trays=self.console.inbox(who), now=time.time())

        return self._page(request, run)

    @http("GET", "/console/map")
    def map(self, request):
        def run(lang):
            who = self._inbox_reader(request)
            return self._html("map.html", lang, who, request=request, tiles=settings.map_tiles())

        return self._page(request, run)

    @http("GET", "/console/map/grids.geojson")
    def map_grids(self, request):
        def run(lang):
            self._inbox_reader(request)
            features = grid_features(self.ctx.tenant)
            colours = (self.scoring.risk() or {}).get("grids", {})
            for f in features["features"]:
                grid = colours.get(f["id"]) or {}
                f["properties"]["colour"] = grid.get("colour", "green")
                if grid.get("label"):  # a reported 五色 label holds the colour up: who said so
                    f["properties"].update(label_colour=grid["label"]["colour"], label_by=grid["label"]["by"])
            return _json(200, features, "application/geo+json")

        return self._page(request, run)

    @http("GET", "/console/map/cases.json")
    def map_cases(self, request):
        return self._page(
            request, lambda lang: _json(200, {"cases": self.console.open_cases(self._inbox_reader(request))})
        )

    # -- the month's reports (scoring's, over RPC; docs/reports.md) ------------------------------
    @http("GET", "/console/reports")
    def reports(self, request):
        def run(lang):
            who, month, scope = self._report_reader(request, "reports")
            report = self.scoring.report(month, scope)
            return self._html(
                "reports.html", lang, who, request=request, report=report, files=REPORT_FILES, scope_arg=scope or ""
            )

        return self._page(request, run)

    @http("GET", "/console/reports/<string:month>/<string:file>")
    def report_file(self, request, month, file):
        def run(lang):
            _, month_, scope = self._report_reader(request, f"{month}/{file}", month)
            if file not in REPORT_FILES:
                raise LookupError(f"no report file {file[:80]!r}; one of {', '.join(REPORT_FILES)}")
            d = self.scoring.report_file(month_, file, scope)
            resp = Response(base64.b64decode(d["body_base64"]), content_type=d["content_type"])
            resp.headers["Content-Disposition"] = d["content_disposition"]
            resp.headers["Cache-Control"] = "no-store"
            return resp

        return self._page(request, run)

    def _report_reader(self, request, target: str, month: str | None = None) -> tuple[Principal, str, str | None]:
        """Who reads which month of which part of the tree (`?scope=`; an officer's own by
        default): the same rule as scoring's GET /reports (reports.read on the scope's place)."""
        who = self._who(request, "reports.read", target)
        month = month or request.args.get("month") or time.strftime("%Y-%m", time.gmtime(time.time() + 8 * 3600))
        if not MONTH.match(month):
            raise ValidationError({"month": ["a month is YYYY-MM"]})
        scope = request.args.get("scope") or (who.scope if who.role in SCOPE_LEVEL else None)
        if scope is not None and scope not in self.ctx.tenant.nodes:
            raise ValidationError({"scope": [f"not a node of {self.ctx.tenant.id}'s grid tree"]})
        self.people.allow(who, "reports.read", target, Resource(grid=scope or self.ctx.tenant.root))
        return who, month, scope

    # -- a case ------------------------------------------------------------------------------
    @http("GET", "/console/cases/<string:case_id>")
    def case_page(self, request, case_id):
        def run(lang):
            who, case = self._case_for(request, "case.read", case_id)
            case = self.people.show(who, "case.read", case)  # masked, and audited when personal
            return self._html(
                "case.html",
                lang,
                who,
                request=request,
                case=case,
                actions=dc.actions_for(self.ctx.tenant, who, case),
                shows_suggestion=dc.shows_suggestion(self.ctx.tenant, who, case),
                departments=self.ctx.tenant.departments,
                levels=self.ctx.tenant.levels,
                done=request.args.get("done", "")[:40],
            )

        return self._page(request, run)

    @http("POST", "/console/cases/<string:case_id>/whistle")
    def whistle(self, request, case_id):
        def run(lang):
            who, _ = self._case_for(request, "case.whistle", case_id, post=True)
            form = request.form
            level = form.get("level") or None
            self.supervision.whistle(case_id, who.subject, form.get("note", ""), level, form.getlist("departments"))
            return _redirect(f"/console/cases/{case_id}?done=whistle")

        return self._page(request, run)

    @http("POST", "/console/cases/<string:case_id>/take-over")
    def take_over(self, request, case_id):
        def run(lang):
            who, _ = self._case_for(request, "case.whistle", case_id, post=True)
            level = dc.my_level(self.ctx.tenant, who)
            if level is None:
                raise TransitionRefused(f"a {who.role} has no level of their own to take a case over to")
            note = request.form.get("note") or f"taken over at the {level} level"
            self.supervision.whistle(case_id, who.subject, note, level, [])
            return _redirect(f"/console/cases/{case_id}?done=take_over")

        return self._page(request, run)

    @http("POST", "/console/cases/<string:case_id>/act/<string:action>")
    def act(self, request, case_id, action):
        def run(lang):
            who, _ = self._case_for(request, "case.act", case_id, post=True)
            if action not in ("verify", "verify_failed", "close_not_fixed", "reject"):
                raise LookupError(f"no action {action[:40]!r} on this page")
            self.supervision.act(case_id, action, who.subject, request.form.get("note", ""))
            return _redirect(f"/console/cases/{case_id}?done={action}")

        return self._page(request, run)

    @http("POST", "/console/work-orders/<string:work_order_id>/extension/<string:decision>")
    def extension(self, request, work_order_id, decision):
        def run(lang):
            check_work_order_id(work_order_id)
            case_id = case_of_work_order(work_order_id) or ""
            who, _ = self._case_for(request, "extension.decide", case_id, post=True)
            if decision not in ("grant", "deny"):
                raise LookupError(f"unknown decision {decision[:40]!r}; grant or deny")
            self.supervision.decide_extension(
                work_order_id, decision == "grant", who.subject, request.form.get("note", "")
            )
            return _redirect(f"/console/cases/{case_id}?done=extension")

        return self._page(request, run)

    @http("POST", "/console/cases/<string:case_id>/evidence")
    def evidence(self, request, case_id):
        def run(lang):
            if (request.content_length or 0) > dc.MAX_PHOTO_BYTES + 64 * 1024:
                raise ValidationError({"photo": [f"a photo is at most {dc.MAX_PHOTO_BYTES} bytes"]})
            who, _ = self._case_for(request, "case.act", case_id, post=True)
            upload = request.files.get("photo")
            if upload is None:
                raise ValidationError({"photo": ["choose a photo to upload (multipart/form-data, field `photo`)"]})
            data = upload.stream.read(dc.MAX_PHOTO_BYTES + 1)
            try:
                self.console.attach_photo(
                    self.photos,
                    who,
                    case_id,
                    data,
                    upload.mimetype or "",
                    request.form.get("note", ""),
                )
            except dc.NotAPhoto as exc:
                raise ValidationError({"photo": [str(exc)]}) from None
            return _redirect(f"/console/cases/{case_id}?done=evidence")

        return self._page(request, run)

    @http("POST", "/console/cases/<string:case_id>/duplicate/<string:decision>")
    def duplicate(self, request, case_id, decision):
        """Confirm or dismiss the case's duplicate suggestion, or un-merge it (docs/duplicates.md)."""

        def run(lang):
            who, _ = self._case_for(request, "case.duplicate", case_id, post=True)
            self.console.decide_duplicate(who, case_id, decision, request.form.get("note", ""))
            return _redirect(f"/console/cases/{case_id}?done={dc.DUPLICATE_ACTIONS[decision]}")

        return self._page(request, run)

    @http("POST", "/console/escalations/<string:item_id>/<string:decision>")
    def escalation(self, request, item_id, decision):
        """The person's office acknowledges (or acts on) its escalation item from the inbox."""

        def run(lang):
            who = self._who(request, "escalation.act", item_id, post=True)
            case = self.console.case(ld.case_of(item_id))
            unit = ld.office_unit(self.ctx.tenant, item_id, case["grid"])
            self.people.allow(who, "escalation.act", item_id, Resource(grid=unit))
            self.supervision.office_decide(item_id, decision, who.subject, note=request.form.get("note", ""))
            return _redirect(f"/console/cases/{case['id']}?done=escalation_{decision[:20]}")

        return self._page(request, run)

    @http("GET", "/console/evidence/<string:case_id>/<string:name>")
    def evidence_photo(self, request, case_id, name):
        def run(lang):
            self._case_for(request, "case.read", case_id)
            if not PHOTO_NAME.match(name):
                raise LookupError(f"no photo {name[:80]}")
            found = self.photos.get(f"{self.ctx.tenant.id}/{case_id}/{name}")
            if found is None:
                raise LookupError(f"no photo {name} on case {case_id}")
            data, content_type = found
            resp = Response(data, mimetype=content_type)
            resp.headers["Cache-Control"] = "private, max-age=86400"
            resp.headers["X-Content-Type-Options"] = "nosniff"
            return resp

        return self._page(request, run)

    # -- who, and how a page answers ----------------------------------------------------------
    def _who(self, request, action: str, target: str, post: bool = False) -> Principal:
        cookie = request.cookies.get(web.COOKIE, "")
        who = self.people.who(request, action, target, session=cookie or None)
        if not who.person:
            raise Forbidden("the command-centre page is for people; a department's system uses the API")
        browser_form = post and not request.headers.get("Authorization")  # a browser's form: its CSRF token
        if browser_form and not web.csrf_ok(cookie, request.form.get(web.CSRF_FIELD, "")):
            raise Forbidden("the form's CSRF token is missing or stale: reload the page and try again")
        return who

    def _inbox_reader(self, request) -> Principal:
        who = self._who(request, "console.inbox", "console")
        scoped = who.role in SCOPE_LEVEL
        return self.people.allow(who, "console.inbox", "console", Resource(grid=who.scope) if scoped else Resource())

    def _case_for(self, request, action: str, case_id: str, post: bool = False) -> tuple[Principal, dict]:
        who = self._who(request, action, case_id, post)
        case = self.console.case(check_case_id(case_id))
        self.people.allow(who, action, case_id, case_resource(case))
        return who, case

    def _html(self, template: str, lang: str, who: Principal | None, **context) -> Response:
        request = context.get("request")
        token = request.cookies.get(web.COOKIE, "") if request is not None else ""
        body = render.page(
            self.pages,
            template,
            lang,
            who=who,
            tenant=self.ctx.tenant,
            csrf=web.csrf_token(token) if token else "",
            **context,
        )
        return _secure(Response(body, mimetype="text/html"))

    def _page(self, request, run) -> Response:
        """Run a page: its Response; a redirect; or the error as a page (a browser) or JSON."""
        lang = i18n.lang_of(request.args.get("lang"), request.cookies.get(web.LANG_COOKIE))
        wants_html = "text/html" in (request.headers.get("Accept") or "")
        try:
            return run(lang)
        except Redirect as r:
            return _redirect(r.location, *r.cookies)
        except ANSWERED as exc:
            if isinstance(exc, Unauthorized) and wants_html and request.method == "GET":
                return _redirect("/console/signin", web.cleared_cookie())
            failure = failure_of(exc)
        except RemoteError as exc:  # supervision refused: its own reason
            failure = _remote_failure(exc)
        status, body = failure.status, failure.body
        if wants_html:
            message = body.get("detail") or body["error"]
            if "fields" in body:
                message = f"{message}: {json.dumps(body['fields'], ensure_ascii=False)}"
            resp = self._html("error.html", lang, None, status=status, message=message)
            resp.status_code = status
        else:
            resp = _json(status, body)
        resp.headers.update(failure.headers)
        return resp


def _remote_failure(exc: RemoteError) -> Failure:
    """An RPC's error as its own status (REMOTE_STATUS by the remote exception's type), else 502."""
    status = REMOTE_STATUS.get(exc.exc_type, 502)
    if status == 400:
        return Failure(status, {"error": "invalid request", "fields": exc.value})
    return Failure(status, {"error": str(exc.value)})


def _q(text: str) -> str:
    return quote(str(text)[:200])


def _secure(resp: Response) -> Response:
    """No framing, no sniffing, no scripts or styles but the page's own (CSP)."""
    tiles = settings.map_tiles()
    img = "'self' data:" + (" " + tiles.split("/{")[0] if tiles else "")
    resp.headers["Content-Security-Policy"] = (
        f"default-src 'self'; img-src {img}; style-src 'self'; script-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    )
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _redirect(location: str, *cookies: str) -> Response:
    resp = Response("", status=303, headers={"Location": location})
    for c in cookies:
        resp.headers.add("Set-Cookie", c)
    return resp


def _json(status: int, payload: dict, mimetype: str = "application/json") -> Response:
    resp = Response(json.dumps(payload, ensure_ascii=False, default=str), status=status, mimetype=mimetype)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _text(status: int, body: str) -> Response:
    return Response(body, status=status, mimetype="text/plain")
