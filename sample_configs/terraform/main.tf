resource "kubernetes_deployment_v1" "checkout" {
  metadata {
    name      = "checkout"
    namespace = var.namespace
    labels = {
      app = "checkout"
    }
  }

  spec {
    replicas = var.replicas

    selector {
      match_labels = {
        app = "checkout"
      }
    }

    template {
      metadata {
        labels = {
          app   = "checkout"
          track = "stable"
        }
      }

      spec {
        container {
          name  = "checkout"
          image = var.stable_image

          port {
            container_port = 8080
          }

          resources {
            requests = {
              cpu    = "250m"
              memory = "256Mi"
            }
            limits = {
              memory = "512Mi"
            }
          }

          readiness_probe {
            http_get {
              path = "/healthz"
              port = 8080
            }
          }
        }
      }
    }
  }

  # Brahma moves replicas and images during a release; Terraform owns the rest.
  lifecycle {
    ignore_changes = [spec[0].replicas, spec[0].template[0].spec[0].container[0].image]
  }
}

resource "kubernetes_service_v1" "checkout" {
  metadata {
    name      = "checkout"
    namespace = var.namespace
  }

  spec {
    selector = {
      app = "checkout"
    }

    port {
      port        = 80
      target_port = 8080
    }
  }
}
