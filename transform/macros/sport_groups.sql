{#-
  Strava's sport types (a growing list, so anything unknown falls into "other") grouped
  the way the summaries need them. Rides include the indoor kinds; whether a ride was
  indoor is decided by `trainer` or VirtualRide, as the original summary did.
-#}
{% macro ride_sport_types() %}
    ('Ride', 'MountainBikeRide', 'GravelRide', 'EBikeRide', 'EMountainBikeRide',
     'VirtualRide', 'Velomobile', 'Handcycle')
{% endmacro %}

{% macro sport_group(sport_type) %}
    case
        when {{ sport_type }} in {{ ride_sport_types() }} then 'ride'
        when {{ sport_type }} in ('Run', 'TrailRun', 'VirtualRun') then 'run'
        when {{ sport_type }} in ('Swim') then 'swim'
        when {{ sport_type }} in ('Walk', 'Hike') then 'walk'
        else 'other'
    end
{% endmacro %}
