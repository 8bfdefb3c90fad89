"""State passed between the processes of one `appgw serve`, each piece typed and in one place.

* `follower`: every process follows the store's committed versions the same way.
* `board`: the health monitor publishes who is out of rotation; workers load it.
* `traffic`: workers publish the backend certificates live traffic refused; the monitor's
  Backend health report loads them.
* `applied`: workers and the monitor publish the versions they serve; the API reports an
  operation done once they all serve it.

Files live in the data directory's `state/` (0700), each written whole and renamed into place,
so a reader never sees half of one, and a failed write (a full disk) leaves the last one.
"""
