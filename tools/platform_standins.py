#!/usr/bin/env python3
"""Local stand-ins of the platforms dynamoi calls (Google OAuth, YouTube Data API, Meta Graph
API with Marketing API insights, Google Ads searchStream, Spotify, Resend, Stripe customers,
PostHog persons), answering with the documented response shapes, for trying dynamoi without
real accounts. Standard library only. Emails sent to the Resend stand-in are printed, so you can
copy an invitation link.

Erasure: Google token revocation (POST /revoke), Meta's DELETE /{version}/me/permissions,
Stripe's customer update (POST /v1/customers/{id}, Idempotency-Key replayed), Resend's
DELETE /contacts/{email} and PostHog's person lookup and DELETE (with delete_events) answer like
the real APIs, including "already gone" the second time (invalid_token, code 190, 404). Each is
printed and counted; GET /standins/calls shows the counts and what was erased.

Billing: Stripe's meter events (POST /v1/billing/meter_events, form-encoded, Idempotency-Key
replayed, a repeated identifier refused with 400 "An event already exists with identifier …")
are printed and listed under "meter_events" in /standins/calls. Emails: GET /standins/emails
lists every email sent, oldest first (e.g. to copy an invitation's token in a script).

Ad reporting: every platform campaign id has spend every day; each call after the first
revises the last three days' conversions upwards (as late attribution does), so a second
`dynamoi sync` shows restatements. Tokens containing "revoked" are refused (Meta code 190,
Google invalid_grant).

    python3 tools/platform_standins.py [PORT]      # default 8099
"""
import collections
import datetime
import itertools
import json
import sys
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EMAIL_IDS = itertools.count(1)
REPORT_CALLS = itertools.count(0)
META_CALL = 0
SEEN_IDEMPOTENCY_KEYS = {}
STRIPE_IDEMPOTENCY = {}  # Idempotency-Key -> (status, answer)
CALLS = collections.Counter()  # erasure endpoint -> calls
REVOKED_TOKENS = set()  # Google and Meta tokens revoked through the stand-in
DELETED_CONTACTS = set()
DELETED_PERSONS = {}  # PostHog person uuid -> deletion parameters
ANONYMISED_CUSTOMERS = {}  # Stripe customer id -> the fields sent
METER_EVENTS = {}  # Stripe meter event identifier -> the meter event object
EMAILS = []  # what the Resend stand-in was asked to send, in order


def video(n):
    return {
        "kind": "youtube#playlistItem",
        "snippet": {
            "publishedAt": f"2026-0{n}-01T12:00:00Z",
            "title": f"Stand-in video {n}",
            "thumbnails": {"high": {"url": f"https://i.ytimg.com/vi/standin{n}/hqdefault.jpg"}},
            "resourceId": {"kind": "youtube#video", "videoId": f"standin{n}"},
        },
        "contentDetails": {"videoId": f"standin{n}", "videoPublishedAt": f"2026-0{n}-01T12:00:00Z"},
    }


def day_figures(campaign, day, call):
    """Deterministic plausible figures of one campaign and day; recent days grow with `call`."""
    seed = (int(campaign) * 7919 + day.toordinal() * 104729) % 1000003
    cents = 1500 + seed % 2500
    late = call if (datetime.date.today() - day).days < 3 else 0
    return {"spend": f"{cents // 100}.{cents % 100:02d}", "impressions": 2000 + seed % 900,
            "clicks": 30 + seed % 40, "views": 300 + seed % 200, "follows": seed % 9,
            "conversions": seed % 5 + late}


def person_uuid(distinct_id):
    """The stand-in person holding a distinct id (every distinct id has one until deleted)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "posthog-standin:" + distinct_id))


def erased(what, detail):
    """Prints what an erasure call did (CALLS counts every call, the refused ones too)."""
    print(f"--- erasure {what}: {detail}", flush=True)


def report_days(since, until):
    day = datetime.date.fromisoformat(since)
    last = datetime.date.fromisoformat(until)
    while day <= last:
        yield day
        day += datetime.timedelta(days=1)


class StandIns(BaseHTTPRequestHandler):
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def bearer(self):
        auth = self.headers.get("Authorization", "")
        return auth[len("Bearer "):] if auth.startswith("Bearer ") else None

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode() if length else ""

    def do_POST(self):
        path = urllib.parse.urlparse(self.path).path
        body = self.body()
        if path == "/token":  # Google OAuth
            form = urllib.parse.parse_qs(body)
            refresh_token = form.get("refresh_token", [""])[0]
            if "revoked" in refresh_token or refresh_token in REVOKED_TOKENS:
                return self.answer(400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
            return self.answer(200, {"access_token": "ya29.standin-access", "expires_in": 3599, "token_type": "Bearer"})
        if path == "/revoke":  # Google OAuth token revocation (token in the form body)
            token = urllib.parse.parse_qs(body).get("token", [""])[0]
            CALLS["google_revoke"] += 1
            if not token:
                return self.answer(400, {"error": "invalid_request", "error_description": "Missing required parameter: token"})
            if "revoked" in token or token in REVOKED_TOKENS:
                return self.answer(400, {"error": "invalid_token", "error_description": "Token expired or revoked"})
            REVOKED_TOKENS.add(token)
            erased("google_revoke", "token revoked")
            return self.answer(200, {})
        if path.startswith("/v1/customers/"):  # Stripe: update a customer
            customer = path[len("/v1/customers/"):]
            if not self.bearer():
                return self.answer(401, {"error": {"type": "invalid_request_error", "message": "You did not provide an API key."}})
            key = self.headers.get("Idempotency-Key")
            if key in STRIPE_IDEMPOTENCY:
                status, answer = STRIPE_IDEMPOTENCY[key]
                return self.answer(status, answer)
            CALLS["stripe_customer_update"] += 1
            if "/" in customer or "missing" in customer:
                status, answer = 404, {"error": {"code": "resource_missing", "param": "id", "type": "invalid_request_error",
                                                 "message": f"No such customer: '{customer}'"}}
            else:
                fields = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
                ANONYMISED_CUSTOMERS[customer] = fields
                erased("stripe_customer_update", f"{customer} fields {sorted(fields)} set to {sorted(set(fields.values()))}")
                emptied = {name: (None if value == "" else value) for name, value in fields.items()}
                answer = {"id": customer, "object": "customer", "address": None, "shipping": None, "name": None,
                          "email": None, "phone": None, "description": None, "livemode": False, "metadata": {}, **emptied}
                status = 200
            if key:
                STRIPE_IDEMPOTENCY[key] = (status, answer)
            return self.answer(status, answer)
        if path == "/v1/billing/meter_events":  # Stripe: create a billing meter event
            if not self.bearer():
                return self.answer(401, {"error": {"type": "invalid_request_error", "message": "You did not provide an API key."}})
            key = self.headers.get("Idempotency-Key")
            if key and ("meter", key) in STRIPE_IDEMPOTENCY:
                status, answer = STRIPE_IDEMPOTENCY[("meter", key)]
                return self.answer(status, answer)
            form = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
            missing = [f for f in ("event_name", "payload[stripe_customer_id]", "payload[value]") if not form.get(f)]
            identifier = form.get("identifier") or f"standin-{uuid.uuid4()}"
            now = int(datetime.datetime.now(datetime.timezone.utc).timestamp())
            if missing:
                status, answer = 400, {"error": {"type": "invalid_request_error", "param": missing[0],
                                                 "message": f"Missing required param: {missing[0]}."}}
            elif identifier in METER_EVENTS:
                status, answer = 400, {"error": {"type": "invalid_request_error",
                                                 "message": f"An event already exists with identifier {identifier}."}}
            else:
                answer = {"object": "billing.meter_event", "created": now, "event_name": form["event_name"],
                          "identifier": identifier, "livemode": False,
                          "payload": {"stripe_customer_id": form["payload[stripe_customer_id]"],
                                      "value": form["payload[value]"]},
                          "timestamp": int(form.get("timestamp") or now)}
                METER_EVENTS[identifier] = answer
                CALLS["stripe_meter_event"] += 1
                print(f"--- stripe meter event {identifier}: {form['payload[value]']} for {form['payload[stripe_customer_id]']}",
                      flush=True)
                status = 200
            if key:
                STRIPE_IDEMPOTENCY[("meter", key)] = (status, answer)
            return self.answer(status, answer)
        if path == "/api/token":  # Spotify client credentials
            return self.answer(200, {"access_token": "BQ-standin", "token_type": "Bearer", "expires_in": 3600})
        if path == "/emails":  # Resend
            key = self.headers.get("Idempotency-Key")
            if key in SEEN_IDEMPOTENCY_KEYS:
                return self.answer(200, {"id": SEEN_IDEMPOTENCY_KEYS[key]})
            email_id = f"standin-email-{next(EMAIL_IDS)}"
            SEEN_IDEMPOTENCY_KEYS[key] = email_id
            email = json.loads(body)
            EMAILS.append({"id": email_id, "to": email["to"], "subject": email["subject"], "text": email["text"]})
            print(f"--- email {email_id} to {', '.join(email['to'])}: {email['subject']}\n{email['text']}", flush=True)
            return self.answer(200, {"id": email_id})
        if path.endswith("/googleAds:searchStream"):  # Google Ads: /{version}/customers/{id}/googleAds:searchStream
            query = json.loads(body)["query"]
            since, until = query.split("BETWEEN '")[1].split("' AND '")
            until = until.split("'")[0]
            call = next(REPORT_CALLS)
            results = []
            for campaign in ("22000000001", "22000000002"):
                for day in report_days(since, until):
                    f = day_figures(campaign, day, call)
                    micros = int(f["spend"].replace(".", "")) * 10000
                    results.append({"campaign": {"id": campaign}, "segments": {"date": day.isoformat()},
                                    "customer": {"currencyCode": "USD"},
                                    "metrics": {"costMicros": str(micros), "impressions": str(f["impressions"]),
                                                "clicks": str(f["clicks"]), "videoTrueviewViews": str(f["views"]),
                                                "conversions": float(f["conversions"])}})
            return self.answer(200, [{"results": results, "fieldMask": "campaign.id", "requestId": "standin"}])
        return self.answer(404, {"error": {"message": "no such stand-in route"}})

    def do_DELETE(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/") if p]
        if len(parts) == 3 and parts[1:] == ["me", "permissions"]:  # Meta: /{version}/me/permissions
            token = self.bearer() or ""
            CALLS["meta_revoke_permissions"] += 1
            if not token or "revoked" in token or token in REVOKED_TOKENS:
                return self.answer(400, {"error": {"message": "Error validating access token: The user has not authorized application.",
                                                   "type": "OAuthException", "code": 190, "error_subcode": 458}})
            REVOKED_TOKENS.add(token)
            erased("meta_revoke_permissions", "app de-authorized")
            return self.answer(200, {"success": True})
        if len(parts) == 2 and parts[0] == "contacts":  # Resend: /contacts/{id or email}
            if not self.bearer():
                return self.answer(401, {"statusCode": 401, "name": "missing_api_key", "message": "Missing API key in the authorization header"})
            CALLS["resend_delete_contact"] += 1
            contact = parts[1]
            if contact in DELETED_CONTACTS:
                return self.answer(404, {"statusCode": 404, "name": "not_found", "message": "Contact not found"})
            DELETED_CONTACTS.add(contact)
            erased("resend_delete_contact", contact)
            return self.answer(200, {"object": "contact", "contact": str(uuid.uuid5(uuid.NAMESPACE_URL, contact)), "deleted": True})
        if len(parts) == 5 and parts[:2] == ["api", "projects"] and parts[3] == "persons":  # PostHog
            if not self.bearer():
                return self.answer(401, {"type": "authentication_error", "code": "not_authenticated",
                                         "detail": "Authentication credentials were not provided.", "attr": None})
            CALLS["posthog_delete_person"] += 1
            person = parts[4]
            if person in DELETED_PERSONS:
                return self.answer(404, {"type": "invalid_request", "code": "not_found", "detail": "Not found.", "attr": None})
            DELETED_PERSONS[person] = {"delete_events": "delete_events" in query, "delete_recordings": "delete_recordings" in query}
            erased("posthog_delete_person", f"{person} {DELETED_PERSONS[person]}")
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return self.answer(404, {"error": {"message": "no such stand-in route"}})

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        parts = [p for p in url.path.split("/") if p]
        if url.path == "/standins/calls":  # what the erasure stand-ins were asked and did
            return self.answer(200, {"calls": dict(CALLS), "deleted_contacts": sorted(DELETED_CONTACTS),
                                     "deleted_persons": DELETED_PERSONS, "anonymised_customers": ANONYMISED_CUSTOMERS,
                                     "meter_events": list(METER_EVENTS.values())})
        if url.path == "/standins/emails":  # every email the Resend stand-in sent, oldest first
            return self.answer(200, {"emails": EMAILS})
        if len(parts) == 4 and parts[:2] == ["api", "projects"] and parts[3] == "persons":  # PostHog person lookup
            if not self.bearer():
                return self.answer(401, {"type": "authentication_error", "code": "not_authenticated",
                                         "detail": "Authentication credentials were not provided.", "attr": None})
            CALLS["posthog_find_person"] += 1
            distinct_id = query.get("distinct_id", [""])[0]
            person = person_uuid(distinct_id)
            results = []
            if distinct_id and "unknown" not in distinct_id and person not in DELETED_PERSONS:
                results.append({"id": int(person[:8], 16), "uuid": person, "name": distinct_id, "distinct_ids": [distinct_id],
                                "properties": {}, "created_at": "2026-01-05T10:00:00Z"})
            return self.answer(200, {"next": None, "previous": None, "results": results})
        if url.path == "/youtube/v3/channels":
            channel = query.get("id", ["UCstandin"])[0]
            return self.answer(200, {"items": [{"id": channel, "contentDetails": {"relatedPlaylists": {"uploads": "UU" + channel[2:]}}}]})
        if url.path == "/youtube/v3/playlistItems":
            if query.get("pageToken") == ["page2"]:
                return self.answer(200, {"items": [video(3)]})
            return self.answer(200, {"items": [video(1), video(2)], "nextPageToken": "page2"})
        if len(parts) == 3 and parts[0] == "v1" and parts[1] in ("tracks", "albums"):
            item = parts[2]
            if parts[1] == "tracks":
                return self.answer(200, {"id": item, "name": "Stand-in track", "popularity": None,
                                         "album": {"id": "2up3OPMp9Tb4dAKM2erWXQ", "name": "Stand-in album", "release_date": "2025-05-01"}})
            return self.answer(200, {"id": item, "name": "Stand-in album", "popularity": 41, "label": "Stand-in Label", "release_date": "2025-05-01"})
        if len(parts) == 3 and parts[1].startswith("act_") and parts[2] == "insights":  # Meta Marketing API
            if "revoked" in self.headers.get("Authorization", "") or self.bearer() in REVOKED_TOKENS:
                return self.answer(400, {"error": {"message": "Error validating access token", "type": "OAuthException", "code": 190}})
            window = json.loads(query["time_range"][0])
            global META_CALL
            if "after" not in query:  # a new listing, not its next page
                META_CALL = next(REPORT_CALLS)
            call = META_CALL
            rows = []
            for campaign in ("120200000000001", "120200000000002"):
                for day in report_days(window["since"], window["until"]):
                    f = day_figures(campaign, day, call)
                    rows.append({"campaign_id": campaign, "date_start": day.isoformat(), "date_stop": day.isoformat(),
                                 "spend": f["spend"], "impressions": str(f["impressions"]), "reach": str(f["impressions"] * 7 // 10),
                                 "clicks": str(f["clicks"]), "account_currency": "USD",
                                 "actions": [{"action_type": "video_view", "value": str(f["views"])},
                                             {"action_type": "like", "value": str(f["follows"])},
                                             {"action_type": "offsite_conversion.fb_pixel_purchase", "value": str(f["conversions"])}]})
            start = int(query.get("after", ["0"])[0])
            page = rows[start:start + 25]
            answer = {"data": page}
            if start + 25 < len(rows):
                answer["paging"] = {"cursors": {"after": str(start + 25)}, "next": "https://graph.facebook.com/next"}
            return self.answer(200, answer)
        if len(parts) == 3 and parts[2] == "posts":  # Meta: /{version}/{page}/posts
            return self.answer(200, {"data": [{"id": f"{parts[1]}_1", "message": "New single out now", "created_time": "2026-03-01T12:00:00+0000",
                                               "permalink_url": "https://www.facebook.com/standin/posts/1"}]})
        if len(parts) == 3 and parts[2] == "media":  # Meta: /{version}/{ig-user}/media
            return self.answer(200, {"data": [{"id": "1789", "caption": "Studio day", "media_type": "IMAGE",
                                               "permalink": "https://www.instagram.com/p/standin/", "timestamp": "2026-03-02T10:00:00+0000"}]})
        return self.answer(404, {"error": {"message": "no such stand-in route"}})

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8099
    print(f"platform stand-ins on http://127.0.0.1:{port}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), StandIns).serve_forever()
