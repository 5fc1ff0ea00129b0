"""A small web service that bills each request's LLM spend to the customer behind its API key.

    python examples/web_service.py        # self-test: serve on 127.0.0.1, send requests, print per customer
    python examples/web_service.py --serve [--port 8000]
    curl -X POST localhost:8000/ask -H 'Authorization: Bearer sk-acme-1a2b' -d '{"question": "hi"}'

`POST /ask` with `Authorization: Bearer <key>`: the key is mapped to a customer id (a database
lookup in a real service), and the request runs as a `costspan.task` for that customer, so its
gpt-4o call is priced and attributed to the customer. Each customer has a spending cap
(`costspan.budget(scope="customer")`, $0.02 here so the self-test reaches it): past it, requests get
402 and no LLM call is sent. Unknown keys get 401 and cost nothing.

Standard library only (wsgiref); offline against costspan's fake OpenAI unless OPENAI_API_KEY is set.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from decimal import Decimal
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from _support import Providers, rollup, setup, usd

import costspan

MODEL = "gpt-4o"
CUSTOMER_CAP_USD = Decimal("0.02")
API_KEYS = {"sk-acme-1a2b": "cus_acme", "sk-globex-3c4d": "cus_globex"}

StartResponse = Callable[..., Any]


def customer_of(authorization: str | None) -> str | None:
    scheme, _, key = (authorization or "").partition(" ")
    return API_KEYS.get(key.strip()) if scheme.lower() == "bearer" else None


def respond(start_response: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
    payload = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


def make_app(client: Any) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if (environ["REQUEST_METHOD"], environ["PATH_INFO"]) != ("POST", "/ask"):
            return respond(start_response, "404 Not Found", {"error": "POST /ask"})
        customer = customer_of(environ.get("HTTP_AUTHORIZATION"))
        if customer is None:
            return respond(start_response, "401 Unauthorized", {"error": "unknown API key"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            question = str(json.loads(environ["wsgi.input"].read(length) or b"{}")["question"])
        except (ValueError, KeyError, TypeError):
            return respond(start_response, "400 Bad Request", {"error": 'send {"question": "..."}'})

        with (
            costspan.task("answer-question", customer_id=customer, feature="support-chat") as span,
            costspan.budget(CUSTOMER_CAP_USD, scope="customer") as cap,
        ):
            try:
                reply = client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": question}]
                )
            except costspan.BudgetExceeded:
                refused = {
                    "error": "spending cap reached",
                    "customer": customer,
                    "spent_usd": str(cap.spent_usd),
                }
                return respond(start_response, "402 Payment Required", refused)
            spent = cap.spent_usd
        cost, _ = rollup(span)
        body = {
            "answer": reply.choices[0].message.content,
            "customer": customer,
            "cost_usd": str(cost),
            "spent_usd": str(spent),
        }
        return respond(start_response, "200 OK", body)

    return app


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def ask(base_url: str, key: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        base_url + "/ask",
        data=json.dumps(payload).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def self_test(base_url: str) -> None:
    requests: list[tuple[str, dict[str, Any]]] = [("sk-acme-1a2b", {"question": "Where is my invoice?"})] * 5
    requests += [("sk-globex-3c4d", {"question": "How do I reset my password?"})] * 2
    requests += [
        ("sk-globex-3c4d", {"text": "no question"}),
        ("sk-stolen-0000", {"question": "Who are you?"}),
    ]
    answered: dict[str, int] = {}
    refused: dict[str, int] = {}
    spent: dict[str, Decimal] = {}
    for key, payload in requests:
        status, body = ask(base_url, key, payload)
        print(f"{status} {key[:10]}... -> {json.dumps(body)}", flush=True)
        customer = body.get("customer")
        if customer is None:
            continue
        counts = answered if status == 200 else refused
        counts[customer] = counts.get(customer, 0) + 1
        spent[customer] = Decimal(body["spent_usd"])
    print(f"\nper customer (cap {usd(CUSTOMER_CAP_USD)} each):")
    for customer, total in spent.items():
        print(
            f"  {customer:<11} {usd(total)}  {answered.get(customer, 0)} answered, "
            f"{refused.get(customer, 0)} refused"
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--serve", action="store_true", help="serve until interrupted (no self-test)")
    parser.add_argument("--port", type=int, default=8000, help="with --serve (self-test: any free port)")
    args = parser.parse_args(argv)

    setup()
    providers = Providers()
    app = make_app(providers.openai())
    port = args.port if args.serve else 0
    server = make_server("127.0.0.1", port, app, server_class=ThreadingWSGIServer, handler_class=QuietHandler)
    base_url = f"http://127.0.0.1:{server.server_port}"
    try:
        if args.serve:
            print(f"serving on {base_url} (keys: {', '.join(API_KEYS)}); Ctrl-C stops", flush=True)
            server.serve_forever()
        else:
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self_test(base_url)
    except KeyboardInterrupt:
        pass
    finally:
        if not args.serve:
            server.shutdown()
        server.server_close()
        providers.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
