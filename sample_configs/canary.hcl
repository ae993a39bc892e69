# The canary plan of canary.yaml, written in HCL: same model, same defaults, same checks.
name     = "checkout-2.4.1"
app      = "checkout"
image    = "registry.example.com/checkout:2.4.1"
strategy = "canary"
target   = "sim"
interval = "10s"

stage {
  weight  = 5
  observe = "10m"
  criteria = {
    error_rate   = "< 1%"
    latency_p99  = "< 500ms"
    success_rate = "> 99.9%"
  }
}

stage {
  weight  = 25
  observe = "15m"
  criteria = {
    error_rate   = "< 0.5%"
    latency_p99  = ["< 400ms", "<= 1.5x stable"]
    success_rate = "> 99.9%"
  }
}

stage {
  weight  = 50
  observe = "20m"
  criteria = {
    error_rate   = "< 0.1%"
    latency_p99  = "< 300ms"
    success_rate = "> 99.95%"
  }
}

stage {
  name    = "monitoring"
  weight  = 100
  observe = "60m"
  criteria = {
    error_rate   = "< 0.1%"
    latency_p50  = "< 100ms"
    latency_p95  = "< 200ms"
    latency_p99  = "< 500ms"
    success_rate = "> 99.95%"
  }
}

triggers {
  critical = {
    error_rate            = "> 1%"
    success_rate          = "< 99%"
    latency_p99           = "> 1000ms"
    health_check_failures = "> 3"
    memory_oom_kills      = "> 0"
  }
  warning = {
    error_rate  = "> 0.5%"
    latency_p99 = "> 500ms"
    cpu         = { when = "> 80%", consecutive = 2 }
    memory      = "> 85%"
  }
}

analysis {
  min_requests       = 50
  inconclusive_limit = 3
  min_coverage       = 0.8
}

metrics {
  provider = "sim"
  scenario = "healthy"
}

flag {
  name                = "new-checkout-flow"
  new                 = true
  disable_on_rollback = true
}
