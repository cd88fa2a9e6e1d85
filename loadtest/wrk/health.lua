-- GET /health: the same server's floor (routing, envelope, metrics; no auth, no store).
function request()
  return wrk.format("GET", "/health")
end
