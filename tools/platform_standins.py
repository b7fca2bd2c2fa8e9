#!/usr/bin/env python3
"""Local stand-ins of the platforms dynamoi calls (Google OAuth, YouTube Data API, Meta Graph
API with Marketing API insights, Google Ads searchStream, Spotify, Resend), answering with the
documented response shapes, for trying dynamoi without real accounts. Standard library only.
Emails sent to the Resend stand-in are printed, so you can copy an invitation link.

Ad reporting: every platform campaign id has spend every day; each call after the first
revises the last three days' conversions upwards (as late attribution does), so a second
`dynamoi sync` shows restatements. Tokens containing "revoked" are refused (Meta code 190,
Google invalid_grant).

    python3 tools/platform_standins.py [PORT]      # default 8099
"""
import datetime
import itertools
import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EMAIL_IDS = itertools.count(1)
REPORT_CALLS = itertools.count(0)
META_CALL = 0
SEEN_IDEMPOTENCY_KEYS = {}


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

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode() if length else ""

    def do_POST(self):
        path = urllib.parse.urlparse(self.path).path
        body = self.body()
        if path == "/token":  # Google OAuth
            form = urllib.parse.parse_qs(body)
            if "revoked" in form.get("refresh_token", [""])[0]:
                return self.answer(400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
            return self.answer(200, {"access_token": "ya29.standin-access", "expires_in": 3599, "token_type": "Bearer"})
        if path == "/api/token":  # Spotify client credentials
            return self.answer(200, {"access_token": "BQ-standin", "token_type": "Bearer", "expires_in": 3600})
        if path == "/emails":  # Resend
            key = self.headers.get("Idempotency-Key")
            if key in SEEN_IDEMPOTENCY_KEYS:
                return self.answer(200, {"id": SEEN_IDEMPOTENCY_KEYS[key]})
            email_id = f"standin-email-{next(EMAIL_IDS)}"
            SEEN_IDEMPOTENCY_KEYS[key] = email_id
            email = json.loads(body)
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

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        parts = [p for p in url.path.split("/") if p]
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
            if "revoked" in self.headers.get("Authorization", ""):
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
