# The checkout service as code. `brahma preflight` reads these files (python-hcl2) to check that
# the Deployment and Service the plan names are the ones declared here, and, where terraform or
# tofu is installed and the directory initialised, runs `plan -detailed-exitcode` for drift.
terraform {
  required_version = ">= 1.5"

  required_providers {
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.35"
    }
  }
}

provider "kubernetes" {
  config_path = "~/.kube/config"
}
