"""The service's root page: the API documentation from the service's own files, nothing from elsewhere.

BentoML's default root page embeds a Google Tag Manager script, so an operator opening it inside a cluster
makes the browser fetch a third-party script. This page renders the same OpenAPI document (``/docs.json``)
with the Swagger UI files BentoML already serves under ``/static_content/``, and turns off Swagger UI's one
outside call (its online validator badge). ``DocsPageMiddleware`` answers ``GET /`` with it; everything else
passes.
"""

from __future__ import annotations

from cotenant.serving.middleware import ASGIApp, Receive, Scope, Send

DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8" />
    <title>cotenant API</title>
    <link rel="stylesheet" type="text/css" href="./static_content/swagger-ui.css" />
    <link rel="icon" type="image/png" href="./static_content/favicon-light-32x32.png" sizes="32x32" />
  </head>
  <body>
    <noscript>The API is described by the OpenAPI document at <a href="./docs.json">/docs.json</a>.</noscript>
    <div id="swagger-ui"></div>
    <script src="./static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="./static_content/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
    <script>
      window.onload = function () {
        window.ui = SwaggerUIBundle({
          url: "./docs.json",
          dom_id: "#swagger-ui",
          deepLinking: true,
          validatorUrl: null,
          presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
          layout: "StandaloneLayout",
        });
      };
    </script>
  </body>
</html>
"""


class DocsPageMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.body = DOCS_PAGE.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != "/" or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(self.body)).encode()),
            # Belt and braces: even a script injected later could not load anything from elsewhere.
            (
                b"content-security-policy",
                b"default-src 'self'; script-src 'self' 'unsafe-inline'; img-src 'self' data:",
            ),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else self.body}
        )
