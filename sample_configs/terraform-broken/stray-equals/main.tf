# A valid file beside a malformed one: the error names the malformed file.
resource "kubernetes_deployment_v1" "checkout" {
  metadata {
    name = "checkout"
  }
}
