# State of the production deployment (the bucket is given at init).
prefix = "wagate/prod"
