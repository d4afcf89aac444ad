/* The interactive API page: Swagger UI over /api/openapi.json, calls from the admin's own
   session carry its CSRF token; a pasted bearer token (Authorize) works without a session. */
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  var meta = document.querySelector('meta[name="csrf-token"]');
  window.ui = window.SwaggerUIBundle({
    url: root.getAttribute("data-spec"),
    domNode: root,
    deepLinking: true,
    tryItOutEnabled: true,
    persistAuthorization: false,
    validatorUrl: null,
    withCredentials: true,
    requestInterceptor: function (req) {
      if (meta) { req.headers["X-CSRFToken"] = meta.getAttribute("content"); }
      return req;
    }
  });
}());
