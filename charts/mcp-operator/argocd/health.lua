-- Argo CD health check for mcp.operator.dev/McpServer.
-- Install as argocd-cm key `resource.customizations.health.mcp.operator.dev_McpServer`
-- (see hack/gitops-health/README.md). Tested by hack/gitops-health.
--
-- Uses only what Argo CD gives a custom health script by default (no
-- `resource.customizations.useOpenLibs.*`): the base and table libraries and
-- Lua operators. No string/math library, so no string.format or s:sub().
--
--   no status / no status.observedGeneration -> Progressing
--   metadata.generation > observedGeneration   -> Progressing
--   Stalled=True                                -> Degraded    ("Reason: message")
--   Reconciling=True                            -> Progressing ("Reason: message")
--   Ready=True                                  -> Healthy     (Ready's message)
--   anything else                               -> Progressing (Ready's message, if any)
-- Other conditions (Progressing, Degraded, DependencyAvailable, ...) are ignored.

local hs = {}

local function str(v)
  if type(v) == "string" then
    return v
  end
  return ""
end

-- "Reason: message", or whichever of the two is set.
local function describe(c)
  local reason, message = str(c.reason), str(c.message)
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  end
  if reason ~= "" then
    return reason
  end
  return message
end

local status = nil
if type(obj) == "table" and type(obj.status) == "table" then
  status = obj.status
end

if status == nil or type(status.observedGeneration) ~= "number" then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to observe the McpServer"
  return hs
end

local generation = nil
if type(obj.metadata) == "table" and type(obj.metadata.generation) == "number" then
  generation = obj.metadata.generation
end
if generation ~= nil and generation > status.observedGeneration then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local stalled, reconciling, ready = nil, nil, nil
if type(status.conditions) == "table" then
  for _, c in ipairs(status.conditions) do
    if type(c) == "table" then
      if c.type == "Stalled" and c.status == "True" then
        stalled = c
      elseif c.type == "Reconciling" and c.status == "True" then
        reconciling = c
      elseif c.type == "Ready" then
        ready = c
      end
    end
  end
end

if stalled ~= nil then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

if reconciling ~= nil then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = str(ready.message)
  return hs
end

hs.status = "Progressing"
if ready ~= nil and str(ready.message) ~= "" then
  hs.message = ready.message
else
  hs.message = "waiting for the McpServer to become ready"
end
return hs
