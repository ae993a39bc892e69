# Malformed on purpose: a second `=` where a value belongs.
resource "kubernetes_service_v1" "checkout" {
  metadata {
    name = = "checkout"
  }
}
