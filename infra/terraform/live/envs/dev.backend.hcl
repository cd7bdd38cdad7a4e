# State of the development deployment (the bucket is given at init).
prefix = "wagate/dev"
