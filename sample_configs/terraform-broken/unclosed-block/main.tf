# Malformed on purpose: the spec block is never closed. Brahma reports FILE:LINE, no traceback.
resource "kubernetes_deployment_v1" "checkout" {
  metadata {
    name = "checkout"
  }

  spec {
    replicas = 10
}
