-- The athlete's bikes and shoes, with the total distance Strava keeps for each.
select 'bike' as gear_kind, bikes.* from ({{ gear_items('bikes') }}) as bikes
union all
select 'shoe' as gear_kind, shoes.* from ({{ gear_items('shoes') }}) as shoes
